"""The quality gate on real photographs (scikit-image) with known degradations, and the
held-out benchmark split (benchmarks/heldout_corpus.py) kept apart by photograph."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from style_pipeline.contracts.curation import QualityConfig
from style_pipeline.curation import quality

pytest.importorskip("skimage.data")
CONFIG = QualityConfig()
GATED = {"blurry", "underexposed", "overexposed"}


def _corpus_module():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "heldout_corpus.py"
    spec = importlib.util.spec_from_file_location("heldout_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("heldout_corpus", module)
    spec.loader.exec_module(module)
    return module


corpus = _corpus_module()


def _reasons(image: np.ndarray) -> set[str]:
    analysed = quality.analysis_image(Image.fromarray(image), CONFIG.analysis_long_edge)
    return set(quality.with_gate(quality.measure(analysed, "f"), CONFIG).reasons) & GATED


def _degraded(photo: str, kind: str) -> np.ndarray:
    image = corpus.source_photo(photo)
    rng = np.random.default_rng(0)
    if kind == "gaussian":
        return cv2.GaussianBlur(image, (0, 0), 2.5)
    if kind in ("motion", "defocus"):
        return cv2.filter2D(image, -1, corpus.blur_kernel(kind, 12.0, rng))
    if kind == "dark":
        return corpus.expose(image, -3.0, rng)
    if kind == "bright":
        return corpus.expose(image, 2.0, rng)
    if kind == "noise":
        noisy = image + rng.normal(0, 12, image.shape)
        return np.clip(np.round(noisy), 0, 255).astype(np.uint8)
    assert kind == "clean"
    return image


@pytest.mark.parametrize(
    ("photo", "kind", "expected"),
    [
        ("chelsea", "clean", set()),
        ("rocket", "clean", set()),
        ("coins", "noise", set()),
        ("chelsea", "gaussian", {"blurry"}),
        ("chelsea", "motion", {"blurry"}),
        ("coffee", "defocus", {"blurry"}),
        ("astronaut", "dark", {"underexposed"}),
        ("coins", "dark", {"underexposed"}),
        ("camera", "bright", {"overexposed"}),
        ("chelsea", "bright", {"overexposed"}),
    ],
)
def test_gate_on_degraded_photographs(photo, kind, expected):
    assert _reasons(_degraded(photo, kind)) == expected


def test_focus_is_scale_free():
    """A sharp photograph reads as sharp at native and half size; its 2-px blur does not."""
    image = corpus.source_photo("astronaut")
    half = cv2.resize(image, (256, 256), interpolation=cv2.INTER_AREA)
    for img in (image, half):
        gray = quality.analysis_image(Image.fromarray(img)).gray
        blurred = quality.analysis_image(Image.fromarray(cv2.GaussianBlur(img, (0, 0), 2))).gray
        assert quality.focus(gray) > CONFIG.blur_focus_min > quality.focus(blurred)
        assert 0.25 - 1e-3 <= quality.focus(blurred) < quality.focus(gray) <= 1.0


def test_focus_of_a_flat_frame_is_defined():
    flat = np.full((64, 80), 0.5, np.float32)
    assert np.isfinite(quality.focus(flat))


def test_split_never_shares_a_photograph():
    assert not set(corpus.TUNING) & set(corpus.HELDOUT)
    seen = {
        split: {(item.photo, item.name.split("-c")[0]) for item in corpus.heldout_images(split, 1)}
        for split in corpus.SPLITS
    }
    photos = {split: {p for p, _ in pairs} for split, pairs in seen.items()}
    assert all(p == n for pairs in seen.values() for p, n in pairs)  # names carry the photo
    assert photos["tuning"] <= set(corpus.TUNING) and photos["heldout"] <= set(corpus.HELDOUT)
    assert not photos["tuning"] & photos["heldout"]
    assert len(photos["heldout"]) >= 5 and len(photos["tuning"]) >= 7


def test_heldout_images_are_reproducible():
    first = next(iter(corpus.heldout_images("heldout", 1)))
    again = next(iter(corpus.heldout_images("heldout", 1)))
    assert first.name == again.name and np.array_equal(first.image, again.image)
