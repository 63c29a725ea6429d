"""The ``frames`` stage with its stills in a process pool: the same records, failures,
keys and bytes as inline, bad stills rejected with today's reasons, row order kept, work
folders closed, and a progress line."""

from __future__ import annotations

import hashlib
import os

import pytest

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.demo.samples import make_cut_video
from style_pipeline.media.workdirs import work_root
from style_pipeline.stages import frames as frames_stage
from style_pipeline.stages.frames import extract_partition
from style_pipeline.storage.store import Store
from style_pipeline_tests.media.factories import make_jpeg, make_png, make_png_bomb

DAY = "2026-04-05"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    src = tmp_path_factory.mktemp("frames_pool")
    video = src / "clip.mp4"
    assert make_cut_video(video, width=128, height=72, fps=10, shot_seconds=[1, 1]) == [1.0]
    files = [
        ("video", video),
        ("image", make_jpeg(src / "rotated.jpg", (96, 64), orientation=6, make="Cam")),
    ]
    files.append(("image", src / "broken.jpg"))
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    files.append(("image", make_png_bomb(src / "bomb.png", 20000, 20000)))
    for i in range(7):
        files.append(
            ("image", make_jpeg(src / f"p{i}.jpg", (160 + 8 * i, 120), color=(30 * i, 90, 200)))
        )
    files.append(("image", make_png(src / "flat.png", (50, 30))))
    return files


def _rows(store: Store, media) -> list[dict]:
    rows = []
    for kind, path in media:
        media_id = hashlib.sha256(path.read_bytes()).hexdigest()
        key = store.put_file(path, f"raw_media/objects/{media_id}{path.suffix}")
        rows.append(
            {"media_id": media_id, "source_name": path.name, "kind": kind, "object_path": key}
        )
    odd = {**rows[1], "media_id": "f" * 64, "kind": "unknown", "source_name": "odd.bin"}
    return [rows[2], *rows[:5], rows[1], odd, *rows[5:]]  # a duplicate row, an unsupported one


def _ours() -> set[str]:
    return {
        p.name for p in work_root().iterdir() if p.name.lstrip(".").startswith(f"{os.getpid()}-")
    }


def test_pool_gives_the_inline_result(tmp_path, media, monkeypatch):
    monkeypatch.setattr(frames_stage, "MIN_POOL_STILLS", 0)
    results, stored = {}, {}
    lines: list[str] = []
    for workers in (1, 2):
        store = Store(str(tmp_path / f"w{workers}"))
        rows = _rows(store, media)
        settings = FrameSettings(workers=workers, still_max_edge=128)
        log = lines.append if workers == 2 else None
        results[workers] = extract_partition(rows, store, DAY, settings, log)
        stored[workers] = {k: store.read_bytes(k) for k in store.list(f"frames/{DAY}")}
        assert _ours() == set()  # every still's work folder is gone

    inline, pooled = results[1], results[2]
    assert [f.model_dump() for f in pooled.frames] == [f.model_dump() for f in inline.frames]
    assert pooled.failures == inline.failures
    assert set(pooled.timings) == set(inline.timings)
    assert stored[2] == stored[1] and len(stored[2]) == len(pooled.frames)

    by_name = {f.source_name: f.reason for f in pooled.failures}
    assert by_name == {
        "broken.jpg": "corrupt",
        "bomb.png": "decompression_bomb",
        "odd.bin": "unsupported_type",
    }
    assert [f.source_name for f in pooled.failures] == ["broken.jpg", "bomb.png", "odd.bin"]
    names = [f.source_name for f in pooled.frames]
    firsts = list(dict.fromkeys(names))
    assert firsts == ["clip.mp4", "rotated.jpg", *[f"p{i}.jpg" for i in range(7)], "flat.png"]
    assert {(f.width, f.height) for f in pooled.frames if f.source_name == "rotated.jpg"} == {
        (64, 96)
    }
    assert lines[-1].startswith("frames: stills standardised: 11/11 stills in")


def test_few_stills_run_inline(tmp_path, media, monkeypatch):
    used: list[tuple[int, int, int]] = []
    real = frames_stage.map_bounded

    def spy(fn, items, workers=0, **kwargs):
        used.append((workers, kwargs["min_items"], kwargs["total"]))
        return real(fn, items, workers, **kwargs)

    monkeypatch.setattr(frames_stage, "map_bounded", spy)
    store = Store(str(tmp_path))
    rows = [r for r in _rows(store, media) if r["kind"] == "image"]
    rows = list({r["media_id"]: r for r in rows}.values())[:3]
    result = extract_partition(rows, store, DAY, FrameSettings(workers=2))
    assert used == [(2, frames_stage.MIN_POOL_STILLS, 3)]  # map_bounded keeps 3 < 16 inline
    assert len(result.frames) + len(result.failures) == 3
