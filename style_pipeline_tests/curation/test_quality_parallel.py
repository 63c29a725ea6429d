"""``score_frames`` in a process pool: the same records as inline and as the sequential
algorithm it replaced (SSIM against the media's last *kept* frame), a bad file's error,
and the ``quality_scores`` stage's progress lines."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
import pytest
from PIL import Image, UnidentifiedImageError

from style_pipeline.contracts.curation import IqaConfig, QualityConfig, QualityRecord
from style_pipeline.curation import quality
from style_pipeline.curation.faces import FaceDetector
from style_pipeline.curation.quality import (
    AnalysisImage,
    FrameInput,
    load_analysis_image,
    measure,
    score_frames,
    with_gate,
)
from style_pipeline.stages.quality_scores import score_partition
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.factories import jpeg, save, scene

CONFIG = QualityConfig(min_short_edge=64, iqa=IqaConfig(brisque=False, clip_iqa=False))
DAY = "2026-11-10"


def sequential_reference(frames: list[FrameInput], config: QualityConfig) -> list[QualityRecord]:
    """The loop ``score_frames`` ran before it was split for the pool, kept as the oracle."""
    faces = FaceDetector(config.faces)
    out: dict[str, QualityRecord] = {}

    def key(f: FrameInput) -> str:
        return f.media_id if f.media_id is not None else f"\0{f.frame_id}"

    kept: dict[str, AnalysisImage | None] = {}
    for frame in sorted(frames, key=lambda f: (key(f), f.timestamp_s, f.frame_id)):
        image = load_analysis_image(frame.path, config.analysis_long_edge)
        previous = kept.get(key(frame))
        record = with_gate(measure(image, frame.frame_id, frame.media_id, previous, faces), config)
        out[frame.frame_id] = record
        if record.passed:
            kept[key(frame)] = image
    return [out[f.frame_id] for f in frames]


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> list[FrameInput]:
    """Three media in shuffled input order: a run of near-identical frames (redundant after
    the first), a blurry frame between them, distinct frames, and frames without media."""
    root = tmp_path_factory.mktemp("quality_pool")
    base = scene(1)
    out = []
    for i in range(7):  # media "clip": the same shot re-encoded, then a blurry one
        image = jpeg(base, 60 + 5 * i)
        if i == 3:
            image = np.asarray(Image.fromarray(image).resize((32, 24)).resize((256, 192)))
        out.append(FrameInput(f"clip-{i}", save(image, root / f"clip-{i}.jpg"), "clip", i * 0.5))
    for i in range(6):
        path = save(scene(10 + i), root / f"other-{i}.jpg")
        out.append(FrameInput(f"other-{i}", path, "other", float(5 - i)))
    for i in range(4):
        dark = (scene(20 + i) // (8 if i % 2 else 1)).astype(np.uint8)
        out.append(FrameInput(f"still-{i}", save(dark, root / f"still-{i}.jpg")))
    order = np.random.default_rng(0).permutation(len(out))
    return [out[i] for i in order]


def dumps(records: list[QualityRecord]) -> list[dict]:
    return [r.model_dump() for r in records]


def test_pool_gives_the_records_of_the_sequential_loop(frames, monkeypatch):
    used: list[int] = []
    real = quality.map_bounded

    def spy(fn, items, workers=0, **kwargs):
        used.append(workers)
        return real(fn, items, workers, **kwargs)

    monkeypatch.setattr(quality, "map_bounded", spy)
    reference = dumps(sequential_reference(frames, CONFIG))
    inline = dumps(score_frames(frames, CONFIG, workers=1))
    pooled = dumps(score_frames(frames, CONFIG, workers=2))
    assert used == [1, 2]  # the second run went through a two-process pool
    assert pooled == inline == reference
    by_id = {r["frame_id"]: r for r in pooled}
    assert by_id["clip-0"]["ssim_prev"] is None and by_id["clip-0"]["passed"]
    assert "redundant" in by_id["clip-1"]["reasons"]
    assert "blurry" in by_id["clip-3"]["reasons"]
    assert sum(r["ssim_prev"] is not None for r in pooled) >= 10
    assert [r["frame_id"] for r in pooled] == [f.frame_id for f in frames]


def test_small_days_run_inline(frames, monkeypatch):
    used: list[int] = []
    real = quality.map_bounded
    monkeypatch.setattr(
        quality,
        "map_bounded",
        lambda fn, items, w=0, **k: used.append(w) or real(fn, items, w, **k),
    )
    few = frames[: quality.MIN_POOL_FRAMES - 1]
    assert dumps(score_frames(few, CONFIG, workers=2)) == dumps(sequential_reference(few, CONFIG))
    assert used == [1]


@pytest.mark.parametrize("workers", [1, 2])
def test_an_unreadable_frame_raises_its_decoder_error_naming_the_frame(
    frames, tmp_path, workers, monkeypatch
):
    monkeypatch.setattr(quality, "MIN_POOL_FRAMES", 0)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    broken = [*frames[:5], FrameInput("broken", bad, "other", 99.0)]
    with pytest.raises(UnidentifiedImageError) as caught:
        score_frames(broken, CONFIG, workers=workers)
    assert any("frame broken" in note for note in caught.value.__notes__)


def test_detector_objects_run_inline_only(frames):
    with pytest.raises(ValueError, match="workers=1"):
        score_frames(frames, CONFIG, FaceDetector(CONFIG.faces), workers=2)


def test_the_stage_logs_progress_and_matches_inline(frames, tmp_path):
    store = Store(str(tmp_path))
    rows = []
    for f in frames:
        buffer = io.BytesIO()
        Image.open(f.path).save(buffer, format="JPEG", quality=92)
        key = store.put_bytes(buffer.getvalue(), layout.frame_key(DAY, f.frame_id))
        rows.append(
            {"frame_id": f.frame_id, "media_id": f.media_id, "timestamp_s": f.timestamp_s}
            | {"path": key}
        )
    table_frames = pl.DataFrame(rows)
    lines: list[str] = []
    pooled, _ = score_partition(
        table_frames, store, CONFIG.model_copy(update={"workers": 2}), lines.append
    )
    inline, _ = score_partition(table_frames, store, CONFIG.model_copy(update={"workers": 1}))
    assert pooled.equals(inline)
    assert lines and lines[-1].startswith(f"quality_scores: {len(frames)}/{len(frames)} frames in")


def test_workers_config_default_is_every_cpu():
    assert QualityConfig().workers == 0
    with pytest.raises(ValueError):
        QualityConfig(workers=-1)
