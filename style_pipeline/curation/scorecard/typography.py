"""``typography``: room for a headline, minus text that is already in the image.

``calm`` pixels have little local detail (Sobel gradient magnitude, 9x9 mean, below 0.04
on the [0, 1] luminance scale) and are not the salient subject (spectral residual below
0.25) unless their whole neighbourhood is flat: spectral residual marks a flat sky above
a busy street as the "anomaly" (measured: saliency 0.73 on such a sky), so for pixels
whose 31x31 neighbourhood has no detail at all (below 0.01) saliency is not asked.
Pixels inside detected text boxes are never calm. ``calm_fraction`` is the area of the largest
axis-aligned all-calm rectangle over the image area (maximal rectangle in a binary
matrix, one histogram stack per row). ``text_fraction`` is the area covered by the text
boxes. ``typography = min(1, calm_fraction / 0.3) * max(0, 1 - text_fraction / 0.1)``: a
third of the frame free is all the room a headline needs; existing text covering a tenth
of the frame leaves no place for ours.

Text boxes come from the PP-OCRv4 detector that ships inside ``rapidocr-onnxruntime``
(detection only, offline). Without that package, ``heuristic`` finds text-like MSER
regions: small, many, aligned in rows; it is cruder and says so in ``detector``.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from style_pipeline.curation.scorecard.saliency import spectral_residual

CALM_SALIENCY = 0.25
CALM_GRADIENT = 0.04
FLAT = 0.01
ROOM = 0.3
TEXT_FULL = 0.1


@dataclass(frozen=True)
class Typography:
    typography: float
    calm_fraction: float
    text_fraction: float


def largest_rectangle(mask: np.ndarray) -> int:
    """Area (pixels) of the largest all-True axis-aligned rectangle of a 2-D bool mask."""
    heights = np.zeros(mask.shape[1] + 1, dtype=np.int64)  # last column: a 0 sentinel
    best = 0
    for row in mask:
        heights[:-1] = np.where(row, heights[:-1] + 1, 0)
        stack: list[tuple[int, int]] = []  # (start column, height), heights increasing
        for i, h in enumerate(heights.tolist()):
            start = i
            while stack and stack[-1][1] >= h:
                start, top = stack.pop()
                best = max(best, top * (i - start))
            stack.append((start, h))
    return best


def calm_mask(gray: np.ndarray, saliency: np.ndarray | None = None) -> np.ndarray:
    """Low-saliency, low-detail pixels of a [0, 1] luminance image."""
    saliency = spectral_residual(gray) if saliency is None else saliency
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.sqrt(gx * gx + gy * gy) / 4.0
    detail = cv2.blur(magnitude, (9, 9))
    flat = cv2.blur(magnitude, (31, 31)) < FLAT
    return (detail < CALM_GRADIENT) & ((saliency < CALM_SALIENCY) | flat)


def text_mask(shape: tuple[int, int], boxes: list[np.ndarray]) -> np.ndarray:
    """Pixels inside the text polygons (``boxes`` in the coordinates of ``shape``)."""
    mask = np.zeros(shape, dtype=np.uint8)
    for box in boxes:
        cv2.fillPoly(mask, [np.round(box).astype(np.int32).reshape(-1, 1, 2)], 1)
    return mask.astype(bool)


def typography_score(
    gray: np.ndarray, boxes: list[np.ndarray], saliency: np.ndarray | None = None
) -> Typography:
    """Score of a luminance image whose text boxes are already found (same coordinates)."""
    text = text_mask(gray.shape, boxes)
    calm = calm_mask(gray, saliency) & ~text
    area = float(gray.size)
    calm_fraction = largest_rectangle(calm) / area
    text_fraction = float(text.sum()) / area
    score = min(1.0, calm_fraction / ROOM) * max(0.0, 1.0 - text_fraction / TEXT_FULL)
    return Typography(float(score), float(calm_fraction), float(text_fraction))
