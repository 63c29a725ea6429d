"""``q_tech``: technical quality in [0, 1] from a ``quality_scores`` row, tuned on nothing.

Each part maps a measured quantity through a fixed curve whose midpoint has a physical
meaning, so the score does not depend on the corpus the quality gate was tuned on:

- sharpness ``s`` (Laplacian variance of the contrast-stretched 512 px luminance, 0-255):
  ``absolute = logistic((log10(1 + s) - 2.0) / 0.25)``. A Laplacian variance of 100 is a
  Laplacian RMS of 10 grey levels: edges about one pixel wide at the analysis scale are
  well above it, a Gaussian blur of ~2 px (at 512 px) falls below it. On a day of at least
  ``MIN_DAY`` frames the part is ``0.8 absolute + 0.2 relative`` with
  ``relative = logistic(z / 1.5)``, ``z = (x - median) / (1.4826 MAD)`` over the day's
  ``x = log10(1 + s)``: the robust z ranks a frame among its own day (a shoot of soft
  portraits is not all blurry) and can move the score by at most 0.2.
- exposure: ``exp(-(|mean - 0.46| / (0.46 * 0.6))^2) * exp(-shadow_clip / 0.25 -
  highlight_clip / 0.03)``, 0.46 being 18 % grey in sRGB. Blown highlights hold no detail
  at all (3 % of them cost a factor e); crushed shadows are often a deliberate black
  background, so they cost a factor e only at 25 % of the frame.
- noise sigma ``n`` (Donoho MAD of the diagonal Haar band, 0-255):
  ``1 / (1 + (n / 5)^2)``; sigma 5 grey levels is where grain is plainly visible at 512 px
  (the area downscale to 512 px has already averaged finer grain away).
- IQA when available: ``1 - brisque / 100`` and ``clip_iqa`` (already in [0, 1]), averaged.

``q_tech = sharp^0.45 * exposure^0.35 * noise^0.20`` (a weighted geometric mean, so one
failed part drags the score down), then ``0.75 q_tech + 0.25 iqa`` when IQA ran.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SHARP_MID = 2.0  # log10(1 + Laplacian variance): Laplacian RMS of 10 grey levels
SHARP_WIDTH = 0.25
MID_GREY = 0.46  # 18 % reflectance in sRGB
EXPOSURE_WIDTH = 0.6  # of the distance from mid grey to black
SHADOW_CLIP_SCALE = 0.25
HIGHLIGHT_CLIP_SCALE = 0.03
NOISE_SIGMA = 5.0
MIN_DAY = 5  # frames needed before the day's median / MAD say anything
WEIGHTS = {"sharp": 0.45, "exposure": 0.35, "noise": 0.20}
IQA_WEIGHT = 0.25


def logistic(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD); zeros when the day has fewer than ``MIN_DAY`` values."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < MIN_DAY:
        return np.zeros_like(x)
    median = np.median(x)
    mad = 1.4826 * np.median(np.abs(x - median))
    return (x - median) / max(mad, 1e-3)


def sharpness_part(sharpness: Sequence[float]) -> np.ndarray:
    x = np.log10(1.0 + np.maximum(np.asarray(sharpness, dtype=np.float64), 0.0))
    absolute = logistic((x - SHARP_MID) / SHARP_WIDTH)
    if x.size < MIN_DAY:
        return absolute
    return 0.8 * absolute + 0.2 * logistic(robust_z(x) / 1.5)


def exposure_part(
    mean: Sequence[float], shadow_clip: Sequence[float], highlight_clip: Sequence[float]
) -> np.ndarray:
    distance = np.abs(np.asarray(mean, dtype=np.float64) - MID_GREY) / MID_GREY
    level = np.exp(-((distance / EXPOSURE_WIDTH) ** 2))
    shadows = np.asarray(shadow_clip, dtype=np.float64) / SHADOW_CLIP_SCALE
    highlights = np.asarray(highlight_clip, dtype=np.float64) / HIGHLIGHT_CLIP_SCALE
    return level * np.exp(-shadows - highlights)


def noise_part(noise_sigma: Sequence[float]) -> np.ndarray:
    return 1.0 / (1.0 + (np.asarray(noise_sigma, dtype=np.float64) / NOISE_SIGMA) ** 2)


def iqa_part(brisque: Sequence[float | None], clip_iqa: Sequence[float | None]) -> np.ndarray:
    """Mean of the IQA scores that ran per frame; NaN where none did."""
    out = np.full(len(brisque), np.nan)
    for i, (b, c) in enumerate(zip(brisque, clip_iqa, strict=True)):
        parts = [float(np.clip(1.0 - b / 100.0, 0, 1))] if b is not None else []
        parts += [float(np.clip(c, 0, 1))] if c is not None else []
        if parts:
            out[i] = float(np.mean(parts))
    return out


def q_tech(
    sharpness: Sequence[float],
    mean_luminance: Sequence[float],
    shadow_clip: Sequence[float],
    highlight_clip: Sequence[float],
    noise_sigma: Sequence[float],
    brisque: Sequence[float | None] | None = None,
    clip_iqa: Sequence[float | None] | None = None,
) -> np.ndarray:
    """``q_tech`` of a day's frames (arrays in the same order), each in [0, 1]."""
    parts = {
        "sharp": sharpness_part(sharpness),
        "exposure": exposure_part(mean_luminance, shadow_clip, highlight_clip),
        "noise": noise_part(noise_sigma),
    }
    score = np.ones(len(parts["sharp"]))
    for name, weight in WEIGHTS.items():
        score *= np.clip(parts[name], 1e-6, 1.0) ** weight
    n = len(score)
    iqa = iqa_part(brisque or [None] * n, clip_iqa or [None] * n)
    ran = ~np.isnan(iqa)
    score[ran] = (1 - IQA_WEIGHT) * score[ran] + IQA_WEIGHT * iqa[ran]
    return np.clip(score, 0.0, 1.0)
