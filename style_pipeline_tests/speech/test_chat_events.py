"""Chat logs through raw_media (kind chat, video association) into the chat_events stage."""

from __future__ import annotations

import polars as pl
import pytest

from style_pipeline.contracts.chat import ChatEventRecord, ChatSettings
from style_pipeline.contracts.ingest import FrameSettings, IngestSettings
from style_pipeline.contracts.media import RawMediaRecord
from style_pipeline.stages.chat_events import chat_events_partition
from style_pipeline.stages.frames import extract_frames
from style_pipeline.stages.raw_media import ingest_partition
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.media.factories import make_video
from style_pipeline_tests.speech import chat_samples as S

DAY = "2026-11-30"

RELATIVE_SHORT = "[0:00:00.5] viewer_one: hi\n[0:00:01] viewer_two: what is this?\n"


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("clip") / "clip.mp4", seconds=2.0)


def _copy(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_bytes(src.read_bytes())


@pytest.fixture
def drop(tmp_path, clip):
    root = tmp_path / "drop"
    day = root / DAY
    _copy(clip, day / "show.mp4")
    (day / "show.chat.log").write_text(RELATIVE_SHORT)
    (day / "show.live_chat.json").write_text(S.YOUTUBE)  # a second log of the same video
    # under chat/: the video sits elsewhere in the drop; a distinct clip (other bytes)
    make_video(day / "vods" / "other.mp4", seconds=1.0, size=(64, 48))
    (day / "chat").mkdir()
    (day / "chat" / "other.jsonl").write_text(S.GENERIC_JSONL)
    (day / "orphan.chat.jsonl").write_text(S.GENERIC_JSONL.replace("m1", "o1"))
    (day / "binary.chat.log").write_bytes(b"\x00\xff\x10" * 64)
    (day / "notes.chat.txt").write_text("dear diary\nno chat here\n")
    (day / "notes.txt").write_text("shopping list")
    return root


def _ingest(tmp_path, drop):
    store = Store(str(tmp_path / "storage"))
    table, facts = ingest_partition(drop, store, DAY, IngestSettings())
    return store, table, facts


def test_raw_media_takes_chat_logs_with_their_video(tmp_path, drop):
    store, table, _ = _ingest(tmp_path, drop)
    assert table.columns == list(RawMediaRecord.model_fields)
    rows = {r["source_name"].removeprefix(f"{DAY}/"): r for r in table.to_dicts()}
    video, other = rows["show.mp4"], rows["vods/other.mp4"]
    assert video["kind"] == "video" and video["status"] == "accepted"
    for name, fmt, owner in [
        ("show.chat.log", "twitch_irc", video),
        ("show.live_chat.json", "youtube_live_chat", video),
        ("chat/other.jsonl", "generic_jsonl", other),
    ]:
        row = rows[name]
        assert (row["kind"], row["status"], row["format_name"]) == ("chat", "accepted", fmt)
        assert row["chat_video"] == owner["source_name"]
        assert row["chat_video_media_id"] == owner["media_id"]
        ext = "." + name.rsplit(".", 1)[1]
        assert row["object_path"] == layout.raw_object_key(row["media_id"], ext)
        assert store.read_bytes(row["object_path"]) == (drop / DAY / name).read_bytes()
        assert store.exists(layout.ledger_key(row["media_id"], DAY))
    orphan = rows["orphan.chat.jsonl"]
    assert orphan["status"] == "accepted" and orphan["chat_video"] is None
    for name in ("binary.chat.log", "notes.chat.txt", "notes.txt"):
        assert rows[name]["reject_reason"] == "unsupported_type", name
    assert "chat" in rows["notes.chat.txt"]["reject_detail"]
    assert "dear diary" not in rows["notes.chat.txt"]["reject_detail"]
    assert video["chat_video"] is None and rows["notes.txt"]["kind"] == "unknown"


def test_chat_events_from_the_days_logs(tmp_path, drop):
    store, raw, _ = _ingest(tmp_path, drop)
    table, facts = chat_events_partition(raw, store, ChatSettings(user_salt="s"))
    assert table.columns == list(ChatEventRecord.model_fields)
    media = {r["source_name"].removeprefix(f"{DAY}/"): r for r in raw.to_dicts()}
    by_file = {f.source_name.removeprefix(f"{DAY}/"): f for f in facts.files}
    assert set(by_file) == {
        "chat/other.jsonl", "orphan.chat.jsonl", "show.chat.log", "show.live_chat.json",
    }  # fmt: skip
    assert (by_file["show.chat.log"].accepted, by_file["show.chat.log"].rejected) == (2, 0)
    orphan = table.filter(pl.col("chat_source_name") == f"{DAY}/orphan.chat.jsonl")
    assert orphan.height == 1
    row = orphan.row(0, named=True)
    assert (row["status"], row["reason"], row["line_no"], row["media_id"]) == (
        "rejected", "video_missing", 0, "",
    )  # fmt: skip
    assert "orphan" in row["detail"]
    assert by_file["orphan.chat.jsonl"].reason == "video_missing"
    show = table.filter(pl.col("chat_source_name") == f"{DAY}/show.chat.log")
    assert show["media_id"].to_list() == [media["show.mp4"]["media_id"]] * 2
    assert show["ts_ms"].to_list() == [500, 1000]
    # YouTube offsets of 61.5 s and more are past the 2 s clip (+2 s slack)
    yt = table.filter(pl.col("chat_source_name") == f"{DAY}/show.live_chat.json")
    assert yt.filter(pl.col("status") == "accepted").is_empty()
    assert yt.filter(pl.col("reason") == "outside_video").height == 3
    other = table.filter(pl.col("chat_source_name") == f"{DAY}/chat/other.jsonl")
    assert set(other["media_id"]) == {media["vods/other.mp4"]["media_id"]}
    assert other.filter(pl.col("status") == "accepted")["ts_ms"].to_list() == [1500]
    assert facts.accepted == 3 and facts.files_rejected == 1 and facts.salted
    assert facts.by_reason["video_missing"] == 1
    assert table["event_id"].n_unique() == table.height


def test_no_upper_bound_without_slack(tmp_path, drop):
    store, raw, _ = _ingest(tmp_path, drop)
    table, _ = chat_events_partition(raw, store, ChatSettings(video_end_slack_ms=None))
    yt = table.filter(pl.col("chat_source_name") == f"{DAY}/show.live_chat.json")
    assert yt.filter(pl.col("status") == "accepted")["ts_ms"].to_list() == [61500, 61500, 90000]


def test_a_duplicate_video_still_owns_its_chat(tmp_path, clip):
    root = tmp_path / "drop"
    _copy(clip, root / DAY / "a.mp4")
    _copy(clip, root / DAY / "b.mp4")  # same bytes: rejected duplicate_content
    (root / DAY / "b.chat.log").write_text(RELATIVE_SHORT)
    store, raw, _ = _ingest(tmp_path, root)
    rows = {r["source_name"]: r for r in raw.to_dicts()}
    assert rows[f"{DAY}/b.mp4"]["reject_reason"] == "duplicate_content"
    assert rows[f"{DAY}/b.chat.log"]["chat_video"] == f"{DAY}/b.mp4"
    table, _ = chat_events_partition(raw, store, ChatSettings())
    assert set(table["media_id"]) == {rows[f"{DAY}/a.mp4"]["media_id"]}


def test_unreadable_copy_and_old_tables(tmp_path, drop):
    store, raw, _ = _ingest(tmp_path, drop)
    broken = raw.with_columns(
        pl.when(pl.col("source_name") == f"{DAY}/show.chat.log")
        .then(pl.lit("raw_media/objects/00/missing.log"))
        .otherwise(pl.col("object_path"))
        .alias("object_path")
    )
    table, facts = chat_events_partition(broken, store, ChatSettings())
    (row,) = table.filter(pl.col("chat_source_name") == f"{DAY}/show.chat.log").to_dicts()
    assert (row["status"], row["reason"]) == ("rejected", "unreadable")
    assert facts.accepted == 1  # chat/other.jsonl still read
    old = raw.drop("chat_video", "chat_video_media_id").filter(pl.col("kind") != "chat")
    table, facts = chat_events_partition(old, store, ChatSettings())
    assert table.is_empty() and table.columns == list(ChatEventRecord.model_fields)


def test_frames_leave_chat_logs_alone(tmp_path, drop):
    store, raw, _ = _ingest(tmp_path, drop)
    chats_only = raw.filter(pl.col("kind") == "chat")
    table, facts = extract_frames(chats_only, store, DAY, FrameSettings())
    assert table.is_empty() and facts.media_in == 0 and not facts.failures


def test_a_log_dropped_again_with_its_late_video_is_read_that_day(tmp_path, clip):
    root = tmp_path / "drop"
    store = Store(str(tmp_path / "storage"))
    (root / "2026-11-29").mkdir(parents=True)
    (root / "2026-11-29" / "late.chat.log").write_text(RELATIVE_SHORT)
    day1, _ = ingest_partition(root, store, "2026-11-29", IngestSettings())
    table1, _ = chat_events_partition(day1, store, ChatSettings())
    assert table1["reason"].to_list() == ["video_missing"]
    _copy(clip, root / DAY / "late.mp4")
    (root / DAY / "late.chat.log").write_text(RELATIVE_SHORT)  # the same bytes again
    (root / DAY / "late copy.chat.log").write_text(RELATIVE_SHORT)
    day2, _ = ingest_partition(root, store, DAY, IngestSettings())
    rows = {r["source_name"]: r for r in day2.to_dicts()}
    assert rows[f"{DAY}/late.chat.log"]["reject_reason"] == "duplicate_content"
    assert rows[f"{DAY}/late.chat.log"]["chat_video"] == f"{DAY}/late.mp4"
    table2, facts = chat_events_partition(day2, store, ChatSettings())
    assert len(facts.files) == 1  # one content, read once
    assert table2["ts_ms"].to_list() == [500, 1000]
    assert set(table2["media_id"]) == {rows[f"{DAY}/late.mp4"]["media_id"]}
