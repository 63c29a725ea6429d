from __future__ import annotations

import cv2
import numpy as np
import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.curation import FaceConfig, QualityConfig, QualityRecord
from style_pipeline.curation import iqa, quality
from style_pipeline.curation.faces import FaceDetector
from style_pipeline.curation.quality import REASON_CODES, FrameInput, analysis_image
from style_pipeline.storage.tables import records_to_frame
from style_pipeline_tests.curation.factories import save, scene

CONFIG = QualityConfig()


def _analysed(image: np.ndarray) -> quality.AnalysisImage:
    return analysis_image(Image.fromarray(image), CONFIG.analysis_long_edge)


def _record(image: np.ndarray, **kwargs) -> QualityRecord:
    return quality.with_gate(quality.measure(_analysed(image), "f", **kwargs), CONFIG)


@pytest.mark.parametrize("metric", ["laplacian_variance", "tenengrad", "sharpness"])
def test_sharpness_drops_monotonically_with_blur(metric):
    image = scene(1, 256, 320)
    sigmas = [0.0, 0.8, 1.6, 3.2, 6.4]
    values = []
    for sigma in sigmas:
        blurred = image if sigma == 0 else cv2.GaussianBlur(image, (0, 0), sigma)
        values.append(getattr(quality, metric)(_analysed(blurred).gray))
    assert all(a > b for a, b in zip(values, values[1:], strict=False))


@pytest.mark.parametrize("sigma", [2.5, 4.0])
def test_blur_is_flagged(sigma):
    assert "blurry" not in _record(scene(2, 256, 320)).reasons
    assert "blurry" in _record(cv2.GaussianBlur(scene(2, 256, 320), (0, 0), sigma)).reasons


@pytest.mark.parametrize(
    ("gain", "expected"),
    [(0.2, "underexposed"), (0.28, "underexposed"), (2.5, "overexposed"), (3.5, "overexposed")],
)
def test_dark_and_bright_images_are_flagged(gain, expected):
    image = scene(3, 256, 320)
    changed = np.clip(image.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    reasons = _record(changed).reasons
    assert expected in reasons
    assert {"underexposed", "overexposed"} - {expected} - set(reasons)
    assert not {"underexposed", "overexposed"} & set(_record(image).reasons)


def test_exposure_statistics():
    gray = np.concatenate([np.zeros(300), np.full(400, 0.5), np.ones(300)]).reshape(10, 100)
    exp = quality.exposure(gray.astype(np.float32))
    assert exp.mean == pytest.approx(0.5, abs=1e-6)
    assert exp.shadow_clip == pytest.approx(0.3) and exp.highlight_clip == pytest.approx(0.3)
    assert exp.p01 == 0.0 and exp.p99 == 1.0


@pytest.mark.parametrize("sigma", [4.0, 8.0, 16.0])
def test_noise_estimate_tracks_added_sigma(sigma):
    rng = np.random.default_rng(int(sigma))
    smooth = cv2.GaussianBlur(scene(4, 256, 320), (0, 0), 3).astype(np.float32)
    noisy = np.clip(smooth + rng.normal(0, sigma, smooth.shape), 0, 255)
    gray = cv2.cvtColor(noisy.astype(np.float32) / 255.0, cv2.COLOR_RGB2GRAY)
    # Gray is a weighted mean of 3 independent channel noises: sigma * 0.67.
    expected = sigma * np.sqrt(0.299**2 + 0.587**2 + 0.114**2)
    assert quality.noise_sigma(gray) == pytest.approx(expected, rel=0.15)


def test_noise_gate():
    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(scene(5, 256, 320), (0, 0), 1.0).astype(np.float32)
    noisy = np.clip(image + rng.normal(0, 30, image.shape), 0, 255).astype(np.uint8)
    assert "noisy" in _record(noisy).reasons
    assert "noisy" not in _record(image.astype(np.uint8)).reasons


@pytest.mark.parametrize("value", [0, 90, 255])
def test_colorfulness_of_gray_is_zero(value):
    assert quality.colorfulness(np.full((32, 48, 3), value / 255, np.float32)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_colorfulness_orders_images():
    gray = np.dstack([cv2.cvtColor(scene(6), cv2.COLOR_RGB2GRAY)] * 3)
    rgb = scene(6)
    assert quality.colorfulness(rgb / 255.0) > quality.colorfulness(gray / 255.0) + 10


def test_ssim():
    gray = _analysed(scene(7)).gray
    assert quality.ssim(gray, gray) == pytest.approx(1.0, abs=1e-9)
    rng = np.random.default_rng(0)
    values = [
        quality.ssim(gray, np.clip(gray + rng.normal(0, s, gray.shape), 0, 1))
        for s in (0.005, 0.02, 0.08)
    ]
    assert 1.0 > values[0] > values[1] > values[2]
    assert quality.ssim(gray, _analysed(scene(8)).gray) < CONFIG.ssim_redundant_min
    half = cv2.resize(gray, (gray.shape[1] // 2, gray.shape[0] // 2), cv2.INTER_AREA)
    assert quality.ssim(gray, half) > 0.8  # resized to the first image's shape


def test_analysis_image_downscales_only():
    big = analysis_image(Image.fromarray(scene(9, 600, 1000)), 512)
    assert big.gray.shape == (307, 512) and (big.width, big.height) == (1000, 600)
    small = analysis_image(Image.fromarray(scene(9, 100, 120)), 512)
    assert small.gray.shape == (100, 120)
    assert small.rgb.dtype == np.float32 and 0 <= small.rgb.min() <= small.rgb.max() <= 1


def _metrics(**overrides) -> QualityRecord:
    base = dict(
        frame_id="f",
        width=640,
        height=480,
        laplacian_var=500.0,
        tenengrad=9000.0,
        sharpness=1500.0,
        mean_luminance=0.45,
        luminance_p01=0.05,
        luminance_p99=0.95,
        shadow_clip=0.0,
        highlight_clip=0.0,
        noise_sigma=2.0,
        colorfulness=30.0,
        focus=0.5,
    )
    return QualityRecord(**{**base, **overrides})


FACES_REQUIRED = QualityConfig(faces=FaceConfig(require_face=True, max_faces=2))


@pytest.mark.parametrize(
    ("overrides", "config", "reasons"),
    [
        ({}, CONFIG, []),
        ({"focus": 0.26}, CONFIG, ["blurry"]),
        ({"focus": None, "sharpness": 1.0}, CONFIG, []),  # rows from before focus existed
        ({"luminance_p99": 0.2, "mean_luminance": 0.1}, CONFIG, ["underexposed"]),
        ({"mean_luminance": 0.05}, CONFIG, ["underexposed"]),
        ({"highlight_clip": 0.2}, CONFIG, ["overexposed"]),
        ({"highlight_clip": 0.2, "mean_luminance": 0.2}, CONFIG, []),  # white collar, dark frame
        ({"mean_luminance": 0.95}, CONFIG, ["overexposed"]),
        ({"noise_sigma": 25.0}, CONFIG, ["noisy"]),
        ({"width": 200}, CONFIG, ["low_resolution"]),
        ({"ssim_prev": 0.97}, CONFIG, ["redundant"]),
        ({"ssim_prev": 0.5}, CONFIG, []),
        ({"face_count": 0}, CONFIG, []),
        ({"face_count": 0}, FACES_REQUIRED, ["no_face"]),
        ({"face_count": 3}, FACES_REQUIRED, ["too_many_faces"]),
        ({"face_count": 1}, FACES_REQUIRED, []),
        (
            {"focus": 0.25, "noise_sigma": 40.0, "width": 10},
            CONFIG,
            ["blurry", "noisy", "low_resolution"],
        ),
    ],
)
def test_gate(overrides, config, reasons):
    passed, found = quality.gate(_metrics(**overrides), config)
    assert found == reasons and passed is (not reasons)
    assert set(found) <= set(REASON_CODES)


def test_face_requirements_need_a_detector(monkeypatch):
    from style_pipeline.curation import faces

    monkeypatch.setattr(faces, "_haar_classifier", lambda cascade_file: None)  # OpenCV 5 builds
    detector = FaceDetector(FaceConfig())
    assert detector.backend == "unavailable" and detector.detect(scene(0)) is None
    with pytest.raises(ValueError, match="face requirements"):
        FaceDetector(FaceConfig(require_face=True))


def test_face_detector_config_errors(tmp_path):
    assert FaceDetector(FaceConfig(enabled=False)).detect(scene(0)) is None
    with pytest.raises(FileNotFoundError):
        FaceDetector(FaceConfig(yunet_model=str(tmp_path / "missing.onnx")))


def test_face_detector_finds_nothing_in_a_faceless_scene():
    detector = FaceDetector(FaceConfig())
    if not detector.available:
        pytest.skip(f"no face backend in this OpenCV ({detector.backend})")
    stats = detector.detect(scene(0, 256, 320))
    assert stats is not None and stats.count == 0 and stats.largest_area_fraction == 0.0


def test_haar_detector_finds_the_astronaut_face():
    data = pytest.importorskip("skimage.data")
    detector = FaceDetector(FaceConfig())
    assert detector.backend == "haar"
    stats = detector.detect(np.ascontiguousarray(data.astronaut()))
    assert stats is not None and stats.count >= 1
    assert 0.01 < stats.largest_area_fraction < 0.5


@pytest.fixture
def empty_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path


def test_iqa_unavailable_without_cached_weights(empty_caches):
    assert iqa.iqa_status(iqa.IqaConfig()) == {"brisque": "unavailable", "clip_iqa": "unavailable"}
    assert iqa.iqa_status(iqa.IqaConfig(brisque=False))["brisque"] == "disabled"
    record = _record(scene(1))
    assert record.brisque is None and record.clip_iqa is None
    assert not list(empty_caches.rglob("*.pt"))  # nothing was fetched


@pytest.mark.slow  # imports torch and piq
def test_brisque_runs_from_cached_weights(empty_caches):
    import torch

    weights = iqa.brisque_weights()
    weights.parent.mkdir(parents=True)
    generator = torch.Generator().manual_seed(0)
    torch.save(
        (torch.randn(8, generator=generator), torch.rand(8, 36, generator=generator)), weights
    )
    scorer = iqa.IqaScorer(iqa.IqaConfig(clip_iqa=False))
    assert scorer.status == {"brisque": "ok", "clip_iqa": "disabled"}
    brisque, clip_iqa = scorer.score(_analysed(scene(2)).rgb)
    assert isinstance(brisque, float) and np.isfinite(brisque) and clip_iqa is None


def test_score_frames_marks_redundant_video_frames(tmp_path):
    a, b = scene(20, 256, 320), scene(21, 256, 320)
    paths = {name: save(img, tmp_path / f"{name}.jpg") for name, img in [("a", a), ("b", b)]}
    blurred = save(cv2.GaussianBlur(b, (0, 0), 4), tmp_path / "blur.jpg")
    frames = [
        FrameInput("v2", paths["a"], "video", 2.0),  # same as v0: redundant
        FrameInput("v0", paths["a"], "video", 0.0),
        FrameInput("v1", blurred, "video", 1.0),  # blurry, never the reference
        FrameInput("v3", paths["b"], "video", 3.0),
        FrameInput("s0", paths["a"], None, 0.0),  # a still: nothing to compare with
    ]
    records = quality.score_frames(frames, QualityConfig(min_short_edge=64))
    by_id = {r.frame_id: r for r in records}
    assert [r.frame_id for r in records] == ["v2", "v0", "v1", "v3", "s0"]
    assert by_id["v0"].passed and by_id["v0"].ssim_prev is None
    assert by_id["v1"].reasons == ["blurry"]
    assert by_id["v2"].reasons == ["redundant"] and by_id["v2"].ssim_prev > 0.99
    assert by_id["v3"].passed and by_id["v3"].ssim_prev < CONFIG.ssim_redundant_min
    assert by_id["s0"].passed and by_id["s0"].ssim_prev is None
    assert by_id["v0"].score > by_id["v1"].score

    table = records_to_frame(records, QualityRecord)
    assert table.schema["reasons"] == pl.List(pl.String())
    assert table.height == 5


def test_score_frames_rejects_duplicate_ids(tmp_path):
    path = save(scene(0), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="unique"):
        quality.score_frames([FrameInput("x", path), FrameInput("x", path)], CONFIG)
