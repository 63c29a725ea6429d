"""Coverage axes: what each frame shows (``axis -> value``), and what a selection covers.

Measured axes come from the pixels and the upstream tables, with fixed value sets:
``palette`` (k-means dominant colours in CIE Lab, named by chroma and hue), ``time_of_day``
(mean luminance), ``people`` (face count) and ``orientation`` (aspect). Any other axis is
a theme's zero-shot axis: the value whose prompts' CLIP text embedding is nearest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import cv2
import numpy as np

from style_pipeline.contracts.themes import Theme

MEASURED_VALUES: dict[str, tuple[str, ...]] = {
    "palette": ("warm", "cool", "neutral", "vivid", "muted"),
    "time_of_day": ("day", "dusk", "night"),
    "people": ("none", "one", "few", "crowd"),
    "orientation": ("landscape", "portrait", "square"),
}
NIGHT_BELOW, DUSK_BELOW = 0.18, 0.35  # mean luminance in [0, 1]
NEUTRAL_BELOW, MUTED_BELOW, VIVID_FROM = 6.0, 16.0, 75.0  # Lab chroma
WARM_HUES = (-45.0, 100.0)  # Lab hue angle in degrees: magenta-red .. orange .. yellow
SQUARE_WITHIN = 1.1  # aspect ratios in [1/1.1, 1.1] are square


def dominant_colours(rgb: np.ndarray, k: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``k`` dominant colours of an RGB uint8 image as Lab centres (k, 3) and pixel shares."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got {rgb.dtype} {rgb.shape}")
    scale = 64 / max(rgb.shape[:2])
    if scale < 1:
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    lab = np.ascontiguousarray(
        cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2LAB).reshape(-1, 3),
        dtype=np.float32,
    )
    k = max(1, min(k, len(lab)))
    start = np.zeros((len(lab), 1), dtype=np.int32)  # ignored without KMEANS_USE_INITIAL_LABELS
    cv2.setRNGSeed(seed)  # cv2.kmeans draws its k-means++ seeds from OpenCV's global RNG
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 0.5)
    _, labels, centres = cv2.kmeans(lab, k, start, criteria, 2, cv2.KMEANS_PP_CENTERS)
    shares = np.bincount(labels.ravel(), minlength=k) / len(labels)
    return centres.astype(np.float64), shares.astype(np.float64)


def palette_name(centres: np.ndarray, shares: np.ndarray) -> str:
    """neutral / muted / vivid by share-weighted Lab chroma, else warm or cool by hue."""
    a, b = centres[:, 1], centres[:, 2]
    chroma = float(np.sum(shares * np.hypot(a, b)))
    if chroma < NEUTRAL_BELOW:
        return "neutral"
    if chroma < MUTED_BELOW:
        return "muted"
    if chroma >= VIVID_FROM:
        return "vivid"
    hue = math.degrees(math.atan2(float(np.sum(shares * b)), float(np.sum(shares * a))))
    return "warm" if WARM_HUES[0] <= hue <= WARM_HUES[1] else "cool"


def time_of_day(mean_luminance: float) -> str:
    if mean_luminance < NIGHT_BELOW:
        return "night"
    return "dusk" if mean_luminance < DUSK_BELOW else "day"


def people(face_count: int | None) -> str | None:
    """None when faces were not counted (detection disabled): the axis is then unknown."""
    if face_count is None:
        return None
    if face_count < 0:
        raise ValueError(f"face_count must be >= 0, got {face_count}")
    return ("none", "one", "few", "few", "few")[face_count] if face_count < 5 else "crowd"


def orientation(width: int, height: int) -> str:
    if width <= 0 or height <= 0:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    ratio = width / height
    if ratio > SQUARE_WITHIN:
        return "landscape"
    return "portrait" if ratio < 1 / SQUARE_WITHIN else "square"


def zero_shot_axes(
    vectors: np.ndarray, theme: Theme, text_banks: Mapping[str, np.ndarray]
) -> list[dict[str, str]]:
    """Per frame, each theme axis's value whose (unit, prompt-averaged) text row is nearest."""
    out: list[dict[str, str]] = [{} for _ in range(len(vectors))]
    for axis, values in theme.axes.items():
        bank = np.asarray(text_banks[axis], dtype=np.float32)
        if bank.shape[0] != len(values):
            raise ValueError(f"axes.{axis}: {bank.shape[0]} text rows for {len(values)} values")
        best = np.argmax(np.asarray(vectors, dtype=np.float32) @ bank.T, axis=1)
        for tags, j in zip(out, best, strict=True):
            tags[axis] = values[int(j)].value
    return out


def axis_values(theme: Theme) -> dict[str, tuple[str, ...]]:
    """Every axis the theme cares about (emphasis > 0) with its possible values."""
    axes = {a: tuple(v.value for v in vals) for a, vals in theme.axes.items()}
    axes.update(MEASURED_VALUES)
    return {a: vals for a, vals in axes.items() if theme.emphasis(a) > 0}


def coverage_counts(
    tags: Sequence[Mapping[str, str]], picked: Sequence[int], axes: Mapping[str, Sequence[str]]
) -> dict[str, dict[str, int]]:
    """axis -> value -> how many picked frames carry it (every value listed, zeros too)."""
    counts = {axis: dict.fromkeys(values, 0) for axis, values in axes.items()}
    for i in picked:
        for axis, value in tags[i].items():
            if axis in counts and value in counts[axis]:
                counts[axis][value] += 1
    return counts


def low_coverage_prompts(
    tags: Sequence[Mapping[str, str]], picked: Sequence[int], axes: Mapping[str, Sequence[str]]
) -> dict[str, str]:
    """axis -> a prompt naming the values with no pick, and whether the day had any."""
    chosen = coverage_counts(tags, picked, axes)
    available = coverage_counts(tags, range(len(tags)), axes)
    out = {}
    for axis, counts in chosen.items():
        missing = [v for v, n in counts.items() if n == 0]
        if not missing:
            continue
        parts = []
        for value in missing:
            have = available[axis][value]
            where = f"{have} unpicked today" if have else "none today"
            parts.append(f"need more {value.replace('_', ' ')} shots? ({where})")
        out[axis] = f"{axis}: " + "; ".join(parts)
    return out


def diversity_tags(tags: Mapping[str, str]) -> list[str]:
    """``axis:value`` strings, sorted by axis."""
    return [f"{axis}:{value}" for axis, value in sorted(tags.items())]


def axis_text_banks(
    theme: Theme, encode: Callable[[list[str]], np.ndarray]
) -> dict[str, np.ndarray]:
    """axis -> (values, dim) unit text rows: each value's prompts embedded and averaged."""
    banks = {}
    for axis, values in theme.axes.items():
        rows = []
        for value in values:
            mean = np.asarray(encode(list(value.prompts)), dtype=np.float64).mean(axis=0)
            rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        banks[axis] = np.asarray(rows, dtype=np.float32)
    return banks
