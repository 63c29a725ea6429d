"""``dedup_set`` hashing in threads or a process pool: the hashes of ``hash_file``, in input
order, a bad file's decoder error naming the frame, the stage's table and progress lines."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest
from PIL import Image, UnidentifiedImageError

from style_pipeline.contracts.curation import DedupConfig
from style_pipeline.curation import dedup
from style_pipeline.curation.dedup import HashedFrame, hash_frames
from style_pipeline.curation.hashing import hash_file
from style_pipeline.stages.dedup_set import dedup_day
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.factories import jpeg, save, scene

DAY = "2026-11-10"


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("dedup_pool")
    base = scene(3)
    out = []
    for i in range(24):
        image = jpeg(base, 50 + i) if i % 3 == 0 else scene(100 + i, 120, 160)
        out.append((f"f{i:02d}", save(image, root / f"f{i:02d}.jpg")))
    order = np.random.default_rng(1).permutation(len(out))
    return [out[i] for i in order]


@pytest.mark.parametrize("min_pool", [0, 10_000])  # processes; threads
def test_hashes_equal_hash_file_in_input_order(paths, monkeypatch, min_pool):
    monkeypatch.setattr(dedup, "MIN_POOL_FILES", min_pool)
    used: list[bool] = []
    real = dedup.map_bounded
    monkeypatch.setattr(
        dedup, "map_bounded", lambda *a, **k: used.append(k["threads"]) or real(*a, **k)
    )
    expected = [HashedFrame(fid, hash_file(p).phash, hash_file(p).dhash) for fid, p in paths]
    calls: list[tuple[int, int | None, float]] = []
    parallel = hash_frames(paths, workers=2, progress=lambda *a: calls.append(a))
    assert parallel == hash_frames(paths, workers=1) == expected
    assert calls[-1][:2] == (len(paths), len(paths))
    assert used[0] is (min_pool > len(paths))


@pytest.mark.parametrize(("workers", "min_pool"), [(1, 0), (2, 0), (2, 10_000)])
def test_an_unreadable_frame_raises_its_decoder_error(
    paths, tmp_path, workers, min_pool, monkeypatch
):
    monkeypatch.setattr(dedup, "MIN_POOL_FILES", min_pool)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    with pytest.raises(UnidentifiedImageError) as caught:
        hash_frames([*paths[:3], ("broken", bad), *paths[3:6]], workers=workers)
    assert any("dedup_set: frame broken" in note for note in caught.value.__notes__)


def test_the_stage_gives_the_same_table_and_logs_progress(paths, tmp_path, monkeypatch):
    monkeypatch.setattr(dedup, "MIN_POOL_FILES", 0)
    store = Store(str(tmp_path))
    rows = []
    for fid, path in paths:
        buffer = io.BytesIO()
        Image.open(path).save(buffer, format="JPEG", quality=92)
        rows.append({"frame_id": fid, "path": store.put_bytes(buffer.getvalue(), f"x/{fid}")})
    frames = pl.DataFrame(rows)
    quality = pl.DataFrame({"frame_id": [f for f, _ in paths], "score": [1.0] * len(paths)})
    lines: list[str] = []
    pooled, facts = dedup_day(frames, quality, store, DAY, DedupConfig(workers=2), lines.append)
    inline, _ = dedup_day(frames, quality, store, DAY, DedupConfig(workers=1))
    assert pooled.equals(inline)
    assert facts.duplicates >= 7  # the re-encoded copies of one scene
    assert lines[-1].startswith(f"dedup_set hashing: {len(paths)}/{len(paths)} frames in")


def test_duplicate_frame_ids_are_still_refused(paths, tmp_path):
    store = Store(str(tmp_path))
    fid, path = paths[0]
    key = store.put_bytes(path.read_bytes(), "x/one")
    frames = pl.DataFrame({"frame_id": [fid, fid], "path": [key, key]})
    quality = pl.DataFrame(schema={"frame_id": pl.String, "score": pl.Float64})
    with pytest.raises(ValueError, match="unique"):
        dedup_day(frames, quality, store, DAY, DedupConfig(workers=2))
