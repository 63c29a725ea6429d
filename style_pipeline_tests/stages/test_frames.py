"""The frames stage: uploads, records, exact keys, failures isolated, determinism."""

from __future__ import annotations

import hashlib
import uuid

import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.contracts.media import FrameRecord, MediaKind
from style_pipeline.demo.samples import make_bad_file, make_cut_video
from style_pipeline.media.frames import frame_id
from style_pipeline.stages.frames import extract_frames, extract_partition
from style_pipeline.storage.layout import frame_key
from style_pipeline.storage.store import Store
from style_pipeline_tests.media.factories import make_jpeg, make_png

DAY = "2025-03-04"
CUTS = [1.0, 2.0]


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    src = tmp_path_factory.mktemp("extract_media")
    video = src / "clip.mp4"
    assert make_cut_video(video, width=192, height=108, fps=10, shot_seconds=[1, 1, 1]) == CUTS
    return {
        "video": video,
        "photo": make_jpeg(src / "photo.jpg", (96, 64), orientation=6, make="Cam", model="X"),
        "png": make_png(src / "flat.png", (50, 30)),
        "bad": make_bad_file(src),
    }


def _rows(store: Store, media: dict) -> list[dict]:
    rows = []
    for name, kind in (("video", "video"), ("bad", "video"), ("photo", "image"), ("png", "image")):
        data = media[name].read_bytes()
        media_id = hashlib.sha256(data).hexdigest()
        key = f"raw_media/objects/{media_id}{media[name].suffix}"
        store.put_file(media[name], key)
        rows.append(
            {
                "media_id": media_id,
                "source_name": media[name].name,
                "kind": kind,
                "object_path": key,
            }
        )
    return rows


def test_extract_partition(tmp_path, media):
    store = Store(str(tmp_path / "storage"))
    rows = _rows(store, media)
    video_id, bad_id, photo_id, png_id = (r["media_id"] for r in rows)
    result = extract_partition(rows, store, DAY, FrameSettings())

    assert [(f.media_id, f.reason) for f in result.failures] == [(bad_id, "corrupt")]
    assert result.failures[0].source_name == "corrupt_clip.mp4"
    assert "ffmpeg failed" in result.failures[0].detail
    assert set(result.timings) == {video_id, bad_id, photo_id, png_id}
    assert all(t >= 0 for t in result.timings.values())

    video = [f for f in result.frames if f.media_id == video_id]
    assert [f.timestamp_s for f in video] == [0.0, *CUTS]
    assert {(f.mode, f.kind, f.width, f.height) for f in video} == {
        ("scene", MediaKind.VIDEO, 192, 108)
    }
    assert video[0].scene_score is None and all(f.scene_score > 0.3 for f in video[1:])

    stills = {f.media_id: f for f in result.frames if f.mode == "still"}
    assert (stills[photo_id].width, stills[photo_id].height) == (64, 96)  # EXIF 6: rotated
    assert (stills[png_id].width, stills[png_id].height) == (50, 30)
    assert all(f.kind is MediaKind.IMAGE and f.timestamp_s == 0.0 for f in stills.values())

    expected_keys = []
    for f in result.frames:
        assert isinstance(f, FrameRecord)
        assert f.frame_id == frame_id(f.media_id, f.timestamp_s, f.mode)
        assert f.path == f"frames/{DAY}/{f.frame_id}.jpg" == frame_key(DAY, f.frame_id)
        data = store.read_bytes(f.path)
        assert hashlib.sha256(data).hexdigest() == f.sha256
        assert data[:3] == b"\xff\xd8\xff"
        expected_keys.append(f.path)
    assert store.list(f"frames/{DAY}") == sorted(expected_keys)
    assert len(expected_keys) == 5


def test_rerun_gives_identical_records(tmp_path, media):
    store = Store(str(tmp_path / "storage"))
    rows = _rows(store, media)
    first = extract_partition(rows, store, DAY, FrameSettings())
    second = extract_partition(rows, store, DAY, FrameSettings())
    assert [f.model_dump() for f in first.frames] == [f.model_dump() for f in second.frames]
    assert len(store.list(f"frames/{DAY}")) == len(first.frames)


def test_other_modes_and_memory_store(media):
    store = Store(f"memory://extract-{uuid.uuid4().hex}")
    rows = _rows(store, media)[:1]
    settings = FrameSettings(mode="interval", interval_s=1.0)
    result = extract_partition(rows, store, DAY, settings)
    assert [f.timestamp_s for f in result.frames] == [0.0, 1.0, 2.0]
    assert {f.mode for f in result.frames} == {"interval"}
    for f in result.frames:
        assert store.exists(f.path)
    scene_ids = {frame_id(rows[0]["media_id"], t, "scene") for t in (0.0, 1.0, 2.0)}
    assert scene_ids.isdisjoint(f.frame_id for f in result.frames)  # mode is in the id


def test_still_cap_and_quality_come_from_settings(tmp_path, media):
    store = Store(str(tmp_path / "storage"))
    rows = [r for r in _rows(store, media) if r["kind"] == "image"]
    result = extract_partition(rows, store, DAY, FrameSettings(still_max_edge=64))
    sizes = sorted((f.width, f.height) for f in result.frames)
    assert sizes == [(43, 64), (50, 30)]  # rotated photo capped; small PNG kept
    for f in result.frames:
        with store.local_copy(f.path) as local, Image.open(local) as img:
            assert img.size == (f.width, f.height)


def test_unsupported_rows_and_duplicates(tmp_path, media):
    store = Store(str(tmp_path / "storage"))
    photo = [r for r in _rows(store, media) if r["source_name"] == "photo.jpg"][0]
    odd = {**photo, "media_id": "f" * 64, "kind": "unknown", "source_name": "odd.bin"}
    result = extract_partition([photo, photo, odd], store, DAY, FrameSettings())
    assert len(result.frames) == 1
    assert [(f.source_name, f.reason) for f in result.failures] == [("odd.bin", "unsupported_type")]


def test_single_shot_video_gives_a_frame_not_a_failure(tmp_path):
    """The most common input, a phone clip without a cut, was rejected as ``corrupt``."""
    clip = tmp_path / "phone.mp4"
    assert make_cut_video(clip, width=128, height=72, fps=10, shot_seconds=[2.5]) == []
    store = Store(str(tmp_path / "storage"))
    media_id = hashlib.sha256(clip.read_bytes()).hexdigest()
    key = store.put_file(clip, f"raw_media/objects/{media_id}.mp4")
    row = {"media_id": media_id, "source_name": clip.name, "kind": "video", "object_path": key}
    result = extract_partition([row], store, DAY, FrameSettings())
    assert result.failures == []
    assert [(f.media_id, f.timestamp_s, f.mode) for f in result.frames] == [
        (media_id, 0.0, "scene")
    ]


def test_extract_frames_takes_accepted_rows_and_reports_failures(tmp_path, media):
    store = Store(str(tmp_path / "storage"))
    rows = _rows(store, media)
    statuses = ["rejected", "accepted", "accepted", "accepted"]  # video rejected at ingest
    raw = pl.DataFrame([{**r, "status": s} for r, s in zip(rows, statuses, strict=True)])
    table, facts = extract_frames(raw, store, DAY, FrameSettings())
    assert facts.media_in == 3 and facts.mode == "scene"
    assert [f.source_name for f in facts.failures] == ["corrupt_clip.mp4"]
    assert facts.failures_by_reason == {"corrupt": 1}
    assert sorted(table["mode"].to_list()) == ["still", "still"]
    assert table.columns == list(FrameRecord.model_fields)


def test_extract_frames_of_an_empty_day_is_a_typed_empty_table(tmp_path):
    raw = pl.DataFrame(schema={"media_id": pl.String, "status": pl.String})
    table, facts = extract_frames(raw, Store(str(tmp_path)), DAY, FrameSettings())
    assert table.is_empty() and "frame_id" in table.columns
    assert (facts.media_in, facts.failures, facts.failures_by_reason) == (0, (), {})


def test_video_past_its_ffmpeg_limit_fails_timeout_and_others_go_on(tmp_path, media):
    """Issue 17, item 2: ffmpeg had no time limit; now it is killed and the file fails."""
    store = Store(str(tmp_path / "storage"))
    rows = _rows(store, media)
    video_id, photo_id = rows[0]["media_id"], rows[2]["media_id"]
    rows[0]["duration_s"] = 3.0
    tiny = FrameSettings(ffmpeg_timeout_floor_s=0.001, ffmpeg_timeout_per_media_s=0)
    result = extract_partition(rows, store, DAY, tiny)
    reasons = {f.media_id: (f.reason, f.detail) for f in result.failures}
    assert reasons[video_id][0] == "timeout"
    assert "ffmpeg ran past the time limit of 0.001 s" in reasons[video_id][1]
    assert {f.media_id for f in result.frames} == {photo_id, rows[3]["media_id"]}
