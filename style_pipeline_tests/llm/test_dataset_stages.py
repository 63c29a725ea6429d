"""aligned_pairs and sft_dataset: stages on hand-built upstream tables, and the assets
materialized into a temp store (exact keys, the files, the checks)."""

from __future__ import annotations

import json

import dagster as dg
import polars as pl
import pytest

from style_pipeline.contracts.alignment import AlignmentSettings, SftSettings
from style_pipeline.stages.aligned_pairs import align_partition
from style_pipeline.stages.sft_dataset import build_sft_dataset
from style_pipeline.storage.store import Store
from style_pipeline_tests.llm.stream_sample import CHAT, SPEECH, TRUTH, VIDEO

DAY = "2026-01-05"
OTHER_VIDEOS = [f"{n:x}" * 64 for n in range(1, 7)]  # six more videos: splits get filled


def transcripts_table() -> pl.DataFrame:
    rows = [
        {"media_id": media, "segment_id": f"{media[:4]}-{sid}", "start_ms": start * 1000,
         "end_ms": end * 1000, "text": text, "language": "en", "avg_logprob": -0.3,
         "no_speech_prob": 0.05, "status": "ok"}
        for media in [VIDEO, *OTHER_VIDEOS]
        for sid, start, end, text in SPEECH
    ]  # fmt: skip
    rows.append({**rows[0], "segment_id": "bad", "text": "", "status": "rejected"})
    return pl.DataFrame(rows)


def chat_table() -> pl.DataFrame:
    rows = [
        {"event_id": f"{media[:4]}-{eid}", "media_id": media, "ts_ms": ts * 1000,
         "user_hash": user, "text": text, "source": "generic", "raw_id": eid,
         "status": "accepted"}
        for media in [VIDEO, *OTHER_VIDEOS]
        for eid, ts, user, text in CHAT
    ]  # fmt: skip
    rows.append({**rows[1], "event_id": "refused", "ts_ms": None, "status": "rejected"})
    return pl.DataFrame(rows)


def test_align_partition_reads_only_usable_rows_and_skips_the_tiny_encoder(tmp_path):
    cfg = AlignmentSettings(
        encoder={"profile": "tiny", "cache_dir": str(tmp_path / "models"), "device": "cpu"}
    )
    table, facts = align_partition(transcripts_table(), chat_table(), cfg)
    assert facts.segments == 7 * len(SPEECH) and facts.messages == 7 * len(CHAT)
    assert facts.embedding == "off (tiny encoder)"
    assert facts.encoder["encoder_profile_used"] == "tiny"
    accepted = table.filter(pl.col("status") == "accepted")
    got = {(r["segment_id"][5:], r["chat_event_ids"][0][5:]) for r in accepted.to_dicts()}
    assert set(TRUTH.items()) <= got <= {*TRUTH.items(), ("s09", "c14")}  # the hard negative
    assert accepted.height == 7 * len(got)
    used, _ = align_partition(
        transcripts_table(), chat_table(), cfg.model_copy(update={"embedding_with_tiny": True})
    )
    assert used["embedding_score"].max() > 0


def test_align_partition_on_a_quiet_day():
    table, facts = align_partition(None, None, AlignmentSettings())
    assert table.is_empty() and "pair_id" in table.columns and facts.embedding == "not needed"


def test_sft_stage_writes_splits_rows_and_manifest(tmp_path):
    store = Store(str(tmp_path / "store"))
    pairs, _ = align_partition(
        transcripts_table(), chat_table(), AlignmentSettings(weights={"embedding": 0.0})
    )
    document, facts = build_sft_dataset(pairs, store, DAY, SftSettings())
    # the same stream in seven videos: the first copy of each pair is kept, the rest are
    # exact duplicates (the dedup is global: the split cannot leak a pair either)
    assert facts.kept == pairs.filter(pl.col("status") == "accepted").height // 7
    assert document.rejected == {"duplicate_exact": facts.rejected}
    assert set(document.files) == {"train", "val", "test", "rows", "manifest"}
    assert document.files["train"] == f"sft_dataset/{DAY}/train.jsonl"
    for name, key in document.files.items():
        assert store.exists(key), name
    manifest = json.loads(store.read_bytes(document.files["manifest"]))
    assert manifest["snapshot_id"] == document.snapshot_id
    rows = pl.read_parquet(store.local_path(document.files["rows"]))
    assert rows.height == document.pairs_in
    again, _ = build_sft_dataset(pairs, store, DAY, SftSettings())
    assert again.snapshot_id == document.snapshot_id


def test_sft_stage_reads_the_window_by_day(tmp_path):
    store = Store(str(tmp_path / "store"))
    cfg = AlignmentSettings(weights={"embedding": 0.0})
    transcripts, chat = transcripts_table(), chat_table()
    first = [VIDEO, OTHER_VIDEOS[0]]
    day1, _ = align_partition(transcripts.filter(pl.col("media_id").is_in(first)),
                              chat.filter(pl.col("media_id").is_in(first)), cfg)  # fmt: skip
    day2, _ = align_partition(transcripts.filter(~pl.col("media_id").is_in(first)),
                              chat.filter(~pl.col("media_id").is_in(first)), cfg)  # fmt: skip
    window = {"2026-01-03": day1, "2026-01-04": None, DAY: day2}
    document, facts = build_sft_dataset(window, store, DAY, SftSettings())
    assert document.partitions == ["2026-01-03", DAY]
    accepted = sum(t.filter(pl.col("status") == "accepted").height for t in (day1, day2))
    assert document.pairs_in == accepted > 0
    rows = facts.rows
    assert rows["media_id"].n_unique() == 7
    # one video, one split, across the whole window
    assert rows.group_by("media_id").agg(pl.col("split").n_unique())["split"].max() == 1


@pytest.fixture
def upstream():
    @dg.asset(name="transcripts", partitions_def=_partitions())
    def transcripts() -> pl.DataFrame:
        return transcripts_table()

    @dg.asset(name="chat_events", partitions_def=_partitions())
    def chat_events() -> pl.DataFrame:
        return chat_table()

    return [transcripts, chat_events]


def _partitions():
    from style_pipeline.defs.partitions import DAILY_PARTITIONS

    return DAILY_PARTITIONS


def test_assets_materialize_with_checks(tmp_path, upstream, monkeypatch):
    from style_pipeline.defs.llm.dataset_assets import aligned_pairs, sft_dataset
    from style_pipeline.defs.run import load_defs

    monkeypatch.setenv("STYLE_PIPELINE_ALIGNMENT__WEIGHTS__EMBEDDING", "0")
    resources = load_defs().resources
    result = dg.materialize(
        [*upstream, aligned_pairs, sft_dataset], partition_key=DAY, resources=resources
    )
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks == {"rejects_have_reasons": True, "no_split_leakage": True}
    store = Store(str(tmp_path / "storage"))
    assert store.exists(f"aligned_pairs/{DAY}.parquet")
    document = json.loads(store.read_bytes(f"sft_dataset/{DAY}.json"))
    assert document["prefix"] == f"sft_dataset/{DAY}"
    assert document["partitions"] == [DAY]  # the other days of the window: none made
    assert store.exists(f"sft_dataset/{DAY}/train.jsonl")


def test_align_partition_reads_the_upstream_contracts_tables():
    """Tables typed by the speech and chat contracts themselves (S1/S2 records)."""
    from style_pipeline.contracts.chat import ChatEventRecord
    from style_pipeline.contracts.speech import TranscriptSegment, WordTiming
    from style_pipeline.stages.transcripts import transcript_frame
    from style_pipeline.storage.tables import records_to_frame

    segments = [
        TranscriptSegment(media_id=VIDEO, segment_id=sid, start_ms=start * 1000,
                          end_ms=end * 1000, text=f" {text}", language="en", avg_logprob=-0.2,
                          no_speech_prob=0.01, model="tiny", backend="transformers",
                          words=[WordTiming(word=" w", start_ms=start * 1000,
                                            end_ms=start * 1000 + 300, probability=0.9)])
        for sid, start, end, text in SPEECH
    ]  # fmt: skip
    events = [
        ChatEventRecord(event_id=eid, media_id=VIDEO, ts_ms=ts * 1000, user_hash=user,
                        text=text, source="twitch_irc", raw_id=eid, status="accepted",
                        chat_id="c" * 64, chat_source_name="v.chat.log", format="twitch_irc",
                        line_no=n + 1)
        for n, (eid, ts, user, text) in enumerate(CHAT)
    ]  # fmt: skip
    events.append(
        ChatEventRecord(event_id="bad", media_id=VIDEO, source="twitch_irc", raw_id="L99",
                        status="rejected", reason="malformed", chat_id="c" * 64,
                        chat_source_name="v.chat.log", format="twitch_irc", line_no=99)
    )  # fmt: skip
    table, facts = align_partition(
        transcript_frame(segments),
        records_to_frame(events, ChatEventRecord),
        AlignmentSettings(weights={"embedding": 0.0}),
    )
    assert facts.messages == len(CHAT) and facts.embedding == "off (weight 0)"
    accepted = table.filter(pl.col("status") == "accepted")
    got = {(r["segment_id"], r["chat_event_ids"][0]) for r in accepted.to_dicts()}
    assert set(TRUTH.items()) <= got
    assert accepted["response"][0] == accepted["response"][0].strip()  # Whisper's space cut
