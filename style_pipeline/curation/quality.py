"""Per-frame quality metrics on a normalized analysis image, and the quality gate.

Every frame is analysed at one resolution (long edge ``analysis_long_edge``, never
upscaled) as RGB and Rec.601 luminance floats in [0, 1]. Gradient metrics use the 0-255
scale so the classic thresholds read as usual. ``sharpness`` (the ranking score's input)
is the Laplacian variance of the contrast-stretched luminance (1st..99th percentile ->
0..255). The blur gate uses ``focus`` instead, a ratio that does not depend on contrast,
resolution or how much texture the scene has (see ``focus``), so thresholds tuned on one
set of photographs hold on others (benchmarks/bench_quality_heldout.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass
from functools import partial

import cv2
import numpy as np
import pywt
from PIL import Image

from style_pipeline.contracts.curation import QualityConfig, QualityRecord
from style_pipeline.curation.faces import FaceDetector, FaceStats
from style_pipeline.curation.iqa import IqaScorer
from style_pipeline.parallel import ItemError, Progress, map_bounded, resolve_workers

REASON_CODES = (
    "blurry",
    "underexposed",
    "overexposed",
    "noisy",
    "low_resolution",
    "redundant",
    "no_face",
    "too_many_faces",
)
# Clipped pixels: luminance rounding to level 0 (crushed shadows) or 255 (blown highlights).


@dataclass(frozen=True)
class AnalysisImage:
    rgb: np.ndarray  # float32 HxWx3 in [0, 1]
    gray: np.ndarray  # float32 HxW in [0, 1]
    width: int  # of the source image
    height: int


def analysis_image(image: Image.Image, long_edge: int = 512) -> AnalysisImage:
    """Normalize a PIL image: RGB, downscaled (area) so its long edge is <= ``long_edge``."""
    width, height = image.size
    scale = min(1.0, long_edge / max(width, height))
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if image.format == "JPEG" and scale < 0.5:
        image.draft("RGB", target)  # DCT-domain downscale while decoding
    rgb = np.asarray(image.convert("RGB"))
    if (rgb.shape[1], rgb.shape[0]) != target:
        rgb = cv2.resize(rgb, target, interpolation=cv2.INTER_AREA)
    rgb_f = rgb.astype(np.float32) / 255.0
    return AnalysisImage(rgb_f, cv2.cvtColor(rgb_f, cv2.COLOR_RGB2GRAY), width, height)


def load_analysis_image(path: str | os.PathLike, long_edge: int = 512) -> AnalysisImage:
    with Image.open(path) as image:
        return analysis_image(image, long_edge)


def _variance(x: np.ndarray) -> float:
    _, std = cv2.meanStdDev(x)
    return float(std[0, 0]) ** 2


def laplacian_variance(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of luminance (0-255 scale)."""
    return _variance(cv2.Laplacian(gray * 255.0, cv2.CV_32F))


def tenengrad(gray: np.ndarray) -> float:
    """Mean squared Sobel gradient magnitude of luminance (0-255 scale)."""
    g = gray * 255.0
    gx, gy = cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)
    return float(cv2.mean(gx * gx + gy * gy)[0])


def _histogram(gray: np.ndarray) -> np.ndarray:
    """256-bin luminance histogram (levels 0..255)."""
    levels = np.clip(np.rint(gray * 255.0), 0, 255).astype(np.uint8)
    return cv2.calcHist([levels], [0], None, [256], [0, 256]).ravel()


def _percentiles(hist: np.ndarray, *qs: float) -> list[float]:
    cdf = np.cumsum(hist) / max(float(hist.sum()), 1.0)
    return [float(np.searchsorted(cdf, q / 100.0)) / 255.0 for q in qs]


def sharpness(gray: np.ndarray) -> float:
    """Laplacian variance after stretching the 1st..99th luminance percentiles to 0..1."""
    lo, hi = _percentiles(_histogram(gray), 1, 99)
    stretched = (gray - lo) / max(hi - lo, 1.0 / 255.0)
    return laplacian_variance(stretched.astype(np.float32))


# Directions of the structure function: right, down and the two diagonals.
_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))
FOCUS_TILE = 64  # analysis pixels; tiles overlap by half
FOCUS_QUANTILE = 75  # of the tiles' ratios: the sharp part of a shallow-focus frame counts
FOCUS_FLOOR = 3.0 / 255.0  # RMS 4-px difference below which a tile is flat (after stretch)


def _squared_step(gray: np.ndarray, dy: int, dx: int, step: int) -> np.ndarray:
    """``(g(p + step * d) - g(p))**2`` at every p, zero where p + step * d leaves the image."""
    h, w = gray.shape
    oy, ox = dy * step, dx * step
    ahead = gray[max(0, oy) : h + min(0, oy), max(0, ox) : w + min(0, ox)]
    here = gray[max(0, -oy) : h + min(0, -oy), max(0, -ox) : w + min(0, -ox)]
    out = np.zeros_like(gray)
    out[: ahead.shape[0], : ahead.shape[1]] = (ahead - here) ** 2
    return out


def focus(gray: np.ndarray) -> float:
    """Scale- and content-normalised sharpness in [0.25, 1]: per tile and direction, the RMS
    1-pixel luminance difference over the RMS 4-pixel difference (the structure function's
    slope). A surface that is smooth at the pixel scale (any blur wider than a pixel) gives
    1/4; edges and fine texture in focus give about 1/2; white noise gives 1. Each tile keeps
    its *smallest* direction, so motion blur (smooth along one direction) counts; flat tiles
    (sky, walls) are skipped; the result is the 75th percentile over tiles, so a sharp
    subject before a soft background is in focus. Contrast-stretched first (1st..99th
    percentile) so the flatness floor means the same in a dark frame."""
    lo, hi = _percentiles(_histogram(gray), 1, 99)
    g = ((gray - lo) / max(hi - lo, 1.0 / 255.0)).astype(np.float32)
    h, w = g.shape
    half = FOCUS_TILE // 2
    ys, xs = np.arange(half, h, half), np.arange(half, w, half)
    if not len(ys) or not len(xs):
        ys, xs = np.array([h // 2]), np.array([w // 2])
    fine: list[np.ndarray] = []
    coarse: list[np.ndarray] = []
    for dy, dx in _DIRECTIONS:
        for step, out in ((1, fine), (4, coarse)):
            energy = cv2.boxFilter(_squared_step(g, dy, dx, step), -1, (FOCUS_TILE, FOCUS_TILE))
            out.append(energy[np.ix_(ys, xs)])
    f, c = np.stack(fine), np.stack(coarse)
    textured = c.min(axis=0) > FOCUS_FLOOR**2
    if not textured.any():  # no tile has structure: judge the frame as a whole
        f, c = f.mean(axis=(1, 2), keepdims=True), c.mean(axis=(1, 2), keepdims=True)
        textured = np.ones(f.shape[1:], bool)
    ratio = np.sqrt(np.maximum(f, 0.0) / np.maximum(c, 1e-12)).min(axis=0)  # box sums round
    return float(np.percentile(ratio[textured], FOCUS_QUANTILE))


@dataclass(frozen=True)
class Exposure:
    mean: float
    p01: float
    p99: float
    shadow_clip: float  # fraction of pixels at luminance level 0
    highlight_clip: float  # fraction of pixels at luminance level 255


def exposure(gray: np.ndarray) -> Exposure:
    """Mean luminance, 1st/99th percentiles (1/255 steps) and clipped fractions."""
    hist = _histogram(gray)
    total = max(float(hist.sum()), 1.0)
    p01, p99 = _percentiles(hist, 1, 99)
    return Exposure(
        mean=float(cv2.mean(gray)[0]),
        p01=p01,
        p99=p99,
        shadow_clip=float(hist[0]) / total,
        highlight_clip=float(hist[255]) / total,
    )


def noise_sigma(gray: np.ndarray) -> float:
    """Donoho's robust noise estimate: MAD of the finest diagonal Haar wavelet band / 0.6745
    (0-255 scale). Strong fine texture also raises it."""
    _, (_, _, diagonal) = pywt.dwt2(gray * 255.0, "haar")
    return float(np.median(np.abs(diagonal)) / 0.6745)


def colorfulness(rgb: np.ndarray) -> float:
    """Hasler and Suesstrunk (2003) colourfulness, 0-255 scale; 0 for gray images."""
    r, g, b = cv2.split(rgb * 255.0)
    (rg_mean,), (rg_std,) = cv2.meanStdDev(r - g)
    (yb_mean,), (yb_std,) = cv2.meanStdDev(0.5 * (r + g) - b)
    return float(np.hypot(rg_std[0], yb_std[0]) + 0.3 * np.hypot(rg_mean[0], yb_mean[0]))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM (Wang et al. 2004; Gaussian window sigma 1.5) of two gray images in [0, 1].
    ``b`` is resized to ``a``'s shape when they differ."""
    if a.shape != b.shape:
        b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
    a, b = a.astype(np.float64), b.astype(np.float64)
    c1, c2 = 0.01**2, 0.03**2

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    num = (2 * mu_a * mu_b + c1) * (2 * cov + c2)
    den = (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    return float(np.mean(num / den))


def gate(metrics: QualityRecord, config: QualityConfig) -> tuple[bool, list[str]]:
    """``(passed, reasons)``; reasons are ordered as in ``REASON_CODES``."""
    found = {
        "blurry": metrics.focus is not None and metrics.focus < config.blur_focus_min,
        "underexposed": metrics.luminance_p99 < config.dark_p99_max
        or metrics.mean_luminance < config.dark_mean_max,
        "overexposed": (
            metrics.highlight_clip > config.bright_clip_max
            and metrics.mean_luminance > config.bright_clip_mean_min
        )
        or metrics.mean_luminance > config.bright_mean_max,
        "noisy": metrics.noise_sigma > config.noise_sigma_max,
        "low_resolution": min(metrics.width, metrics.height) < config.min_short_edge,
        "redundant": metrics.ssim_prev is not None
        and metrics.ssim_prev >= config.ssim_redundant_min,
        "no_face": config.faces.require_face and metrics.face_count == 0,
        "too_many_faces": config.faces.max_faces is not None
        and metrics.face_count is not None
        and metrics.face_count > config.faces.max_faces,
    }
    reasons = [code for code in REASON_CODES if found[code]]
    return not reasons, reasons


def measure(
    image: AnalysisImage,
    frame_id: str,
    media_id: str | None = None,
    previous: AnalysisImage | None = None,
    faces: FaceDetector | None = None,
    iqa: IqaScorer | None = None,
) -> QualityRecord:
    """All metrics of one analysis image (gate fields left at their defaults)."""
    gray, exp = image.gray, exposure(image.gray)
    face: FaceStats | None = None
    if faces is not None:
        face = faces.detect(np.round(image.rgb * 255).astype(np.uint8))
    brisque, clip_iqa = iqa.score(image.rgb) if iqa is not None else (None, None)
    return QualityRecord(
        frame_id=frame_id,
        media_id=media_id,
        width=image.width,
        height=image.height,
        laplacian_var=laplacian_variance(gray),
        tenengrad=tenengrad(gray),
        sharpness=sharpness(gray),
        mean_luminance=exp.mean,
        luminance_p01=exp.p01,
        luminance_p99=exp.p99,
        shadow_clip=exp.shadow_clip,
        highlight_clip=exp.highlight_clip,
        noise_sigma=noise_sigma(gray),
        colorfulness=colorfulness(image.rgb),
        ssim_prev=None if previous is None else ssim(gray, previous.gray),
        face_count=None if face is None else face.count,
        largest_face_fraction=None if face is None else face.largest_area_fraction,
        brisque=brisque,
        clip_iqa=clip_iqa,
        focus=focus(gray),
    )


def with_gate(record: QualityRecord, config: QualityConfig) -> QualityRecord:
    passed, reasons = gate(record, config)
    score = float(np.log10(1.0 + record.sharpness)) - len(reasons)
    return record.model_copy(update={"passed": passed, "reasons": reasons, "score": score})


@dataclass(frozen=True)
class FrameInput:
    """A frame to score: ``media_id`` groups the frames of one video, in timestamp order."""

    frame_id: str
    path: str | os.PathLike
    media_id: str | None = None
    timestamp_s: float = 0.0


# What measuring one frame sends back: its metrics without ``ssim_prev`` and its analysis
# luminance, for the comparison with the next frames of its media.
_Measured = tuple[QualityRecord, np.ndarray]


def _measure_with(
    config: QualityConfig, faces: FaceDetector | None, iqa: IqaScorer | None, frame: FrameInput
) -> _Measured:
    image = load_analysis_image(frame.path, config.analysis_long_edge)
    return measure(image, frame.frame_id, frame.media_id, None, faces, iqa), image.gray


_WORKER_SCORERS: dict[QualityConfig, tuple[FaceDetector, IqaScorer]] = {}


def _measure_file(config: QualityConfig, frame: FrameInput) -> _Measured:
    """``_measure_with`` in a pool worker: the scorers are built once per worker process."""
    if config not in _WORKER_SCORERS:
        _WORKER_SCORERS[config] = FaceDetector(config.faces), IqaScorer(config.iqa)
    return _measure_with(config, *_WORKER_SCORERS[config], frame)


def _worker_setup() -> None:
    """One OpenCV thread per worker: the pool already runs one worker per core."""
    cv2.setNumThreads(1)


# Below this many frames a pool's start-up (a worker imports cv2 and numpy: ~0.3 s)
# costs more than it saves; such days are scored inline.
MIN_POOL_FRAMES = 16


def score_frames(
    frames: Iterable[FrameInput],
    config: QualityConfig,
    faces: FaceDetector | None = None,
    iqa: IqaScorer | None = None,
    *,
    workers: int = 1,
    progress: Progress | None = None,
    every_s: float = 10.0,
) -> list[QualityRecord]:
    """Measure and gate frames; SSIM compares each frame with the previous *kept* frame of
    the same media (a frame is kept when it passes every other check), so a run of
    near-identical frames keeps only its first. Output follows the input order.

    ``workers`` processes (0: one per CPU) measure the frames, each on its own, while this
    process compares each with the media's kept frame and gates it (the only step that
    depends on earlier frames), in media and timestamp order; the records are the same
    for any ``workers``. A pool's workers build their face detector and IQA scorer from
    ``config``, so ``faces`` and ``iqa`` objects can only be given with ``workers=1``.
    A frame that cannot be read raises its decoder's error, noting the frame.
    ``progress(done, total, elapsed_s)`` as in ``parallel.map_bounded``.
    """
    items: Sequence[FrameInput] = list(frames)
    if len({f.frame_id for f in items}) != len(items):
        raise ValueError("frame ids must be unique")
    if workers != 1 and (faces is not None or iqa is not None):
        raise ValueError("faces and iqa objects run inline only: pass workers=1 with them")
    pooled = resolve_workers(workers) > 1 and len(items) >= MIN_POOL_FRAMES
    faces = faces if faces is not None else FaceDetector(config.faces)  # checks the config
    iqa = iqa if iqa is not None else IqaScorer(config.iqa)

    def media_key(f: FrameInput) -> str:
        return f.media_id if f.media_id is not None else f"\0{f.frame_id}"

    ordered = sorted(items, key=lambda f: (media_key(f), f.timestamp_s, f.frame_id))
    if pooled:
        fn: Callable[[FrameInput], _Measured] = partial(_measure_file, config)
        results = map_bounded(
            fn,
            ordered,
            workers,
            progress=progress,
            every_s=every_s,
            min_items=0,
            initializer=_worker_setup,
        )
    else:
        fn = partial(_measure_with, config, faces, iqa)
        results = map_bounded(fn, ordered, 1, progress=progress, every_s=every_s)
    out: dict[str, QualityRecord] = {}
    group: str | None = None
    kept: np.ndarray | None = None  # luminance of the media's last kept frame
    with closing(results):  # a raise below stops the pool at once
        for frame, result in zip(ordered, results, strict=True):
            if isinstance(result, ItemError):
                result.reraise(f"quality_scores: frame {frame.frame_id} ({frame.path})")
            record, gray = result
            if media_key(frame) != group:
                group, kept = media_key(frame), None
            if kept is not None:
                record = record.model_copy(update={"ssim_prev": ssim(gray, kept)})
            out[frame.frame_id] = record = with_gate(record, config)
            if record.passed:
                kept = gray
    return [out[f.frame_id] for f in items]
