"""``composition``: subject on a thirds point, a level horizon, nothing cut at the border.

On the spectral-residual saliency map (coordinates scaled to [0, 1] on both axes):

- ``thirds_distance``: distance from the saliency centroid (weights: saliency above its
  mean) to the nearest of the four thirds points; ``thirds = 1 - min(1, d / 0.3)`` (the
  image centre is 0.236 away, so a centred subject scores about 0.2).
- ``horizon_tilt_deg``: the length-weighted median angle of the long near-horizontal
  (within 20 degrees) Hough segments on Canny edges, None when there are none;
  ``level = 1 - min(1, |tilt| / 10)`` (1 without a horizon).
- ``border_cut``: the largest blob of strong saliency (above mean + 2 std) touches the
  border along more than 10 % of a side.

``composition = 0.5 thirds + 0.3 level + 0.2 (0 if border_cut else 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from style_pipeline.curation.scorecard.saliency import spectral_residual

THIRDS = np.array([(x, y) for x in (1 / 3, 2 / 3) for y in (1 / 3, 2 / 3)])
THIRDS_SCALE = 0.3
MAX_TILT = 10.0
NEAR_HORIZONTAL = 20.0


@dataclass(frozen=True)
class Composition:
    composition: float
    thirds_distance: float
    horizon_tilt_deg: float | None
    border_cut: bool


def saliency_centroid(saliency: np.ndarray) -> tuple[float, float]:
    """(x, y) in [0, 1] of the saliency mass above its mean (the centre for a flat map)."""
    h, w = saliency.shape
    weights = np.maximum(saliency - saliency.mean(), 0.0)
    total = float(weights.sum())
    if total <= 0:
        return 0.5, 0.5
    ys, xs = np.mgrid[0:h, 0:w]
    return float((weights * xs).sum() / total / (w - 1 or 1)), float(
        (weights * ys).sum() / total / (h - 1 or 1)
    )


def thirds_distance(saliency: np.ndarray) -> float:
    point = np.array(saliency_centroid(saliency))
    return float(np.min(np.linalg.norm(THIRDS - point, axis=1)))


def horizon_tilt(gray: np.ndarray) -> float | None:
    """Signed tilt in degrees of the dominant near-horizontal line (None: no such line)."""
    u8 = np.clip(gray * 255.0, 0, 255).astype(np.uint8)
    edges = cv2.Canny(cv2.GaussianBlur(u8, (5, 5), 0), 50, 150)
    w = gray.shape[1]
    lines = cv2.HoughLinesP(edges, 1, np.pi / 360, 40, minLineLength=w // 3, maxLineGap=w // 40)
    if lines is None:
        return None
    angles, lengths = [], []
    for x1, y1, x2, y2 in lines[:, 0, :]:
        angle = float(np.degrees(np.arctan2(y2 - y1, x2 - x1)))
        angle = (angle + 90.0) % 180.0 - 90.0
        if abs(angle) <= NEAR_HORIZONTAL:
            angles.append(-angle)  # image y points down: positive = counter-clockwise
            lengths.append(float(np.hypot(x2 - x1, y2 - y1)))
    if not angles:
        return None
    order = np.argsort(angles)
    cumulative = np.cumsum(np.asarray(lengths)[order])
    return float(np.asarray(angles)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def border_cut(saliency: np.ndarray) -> bool:
    strong = (saliency > saliency.mean() + 2 * saliency.std()).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(strong, connectivity=8)
    if n <= 1:
        return False
    blob = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    h, w = blob.shape
    sides = (blob[0].sum() / w, blob[-1].sum() / w, blob[:, 0].sum() / h, blob[:, -1].sum() / h)
    return bool(max(sides) > 0.1)


def composition_score(gray: np.ndarray, saliency: np.ndarray | None = None) -> Composition:
    saliency = spectral_residual(gray) if saliency is None else saliency
    distance = thirds_distance(saliency)
    tilt = horizon_tilt(gray)
    cut = border_cut(saliency)
    thirds = 1.0 - min(1.0, distance / THIRDS_SCALE)
    level = 1.0 if tilt is None else 1.0 - min(1.0, abs(tilt) / MAX_TILT)
    score = 0.5 * thirds + 0.3 * level + 0.2 * (0.0 if cut else 1.0)
    return Composition(float(score), distance, tilt, cut)
