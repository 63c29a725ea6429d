"""Text already in an image: boxes from an OCR text detector, or a MSER heuristic.

``rapidocr``: the PP-OCRv4 detection model that ships inside the ``rapidocr-onnxruntime``
wheel, run on ONNX Runtime with detection only (no recognition, nothing downloaded).
``heuristic``: OpenCV MSER regions that look like glyphs (small, compact, at least three
of similar height on one row); used when the package is absent or asked for.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

import cv2
import numpy as np

Detector = Literal["rapidocr", "heuristic"]


def available(kind: str = "auto") -> Detector:
    """The detector ``kind`` resolves to (``auto``: rapidocr when installed)."""
    has_rapidocr = importlib.util.find_spec("rapidocr_onnxruntime") is not None
    if kind == "rapidocr" and not has_rapidocr:
        raise RuntimeError("text_detector: rapidocr asked for, rapidocr-onnxruntime not installed")
    if kind == "heuristic" or not has_rapidocr:
        return "heuristic"
    return "rapidocr"


class TextDetector:
    """Finds text boxes (4-point polygons in the pixel coordinates of the given image)."""

    def __init__(self, kind: str = "auto"):
        self.kind: Detector = available(kind)
        self._engine = None
        if self.kind == "rapidocr":
            from rapidocr_onnxruntime import RapidOCR  # type: ignore[import-untyped]

            self._engine = RapidOCR()

    def boxes(self, rgb: np.ndarray) -> list[np.ndarray]:
        """Text polygons of a uint8 RGB image."""
        if self._engine is not None:
            found, _ = self._engine(rgb[:, :, ::-1], use_det=True, use_cls=False, use_rec=False)
            return [np.asarray(b, dtype=np.float32) for b in (found or [])]
        return mser_text_boxes(rgb)


def mser_text_boxes(rgb: np.ndarray) -> list[np.ndarray]:
    """Glyph-like MSER regions that line up (>= 3 of similar height on one row)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape
    _, rects = cv2.MSER_create(  # type: ignore[attr-defined]
        delta=5, min_area=12, max_area=max(60, h * w // 200)
    ).detectRegions(gray)
    glyphs = [
        (x, y, bw, bh)
        for x, y, bw, bh in (tuple(int(v) for v in r) for r in rects)
        if 0.1 < bw / max(bh, 1) < 2.0 and 6 <= bh <= h // 6
    ]
    boxes = []
    for x, y, bw, bh in glyphs:
        row = [
            g
            for g in glyphs
            if abs((g[1] + g[3] / 2) - (y + bh / 2)) < bh / 3 and 0.6 < g[3] / bh < 1.6
        ]
        if len(row) >= 3:
            boxes.append(np.array([[x, y], [x + bw, y], [x + bw, y + bh], [x, y + bh]], np.float32))
    return boxes
