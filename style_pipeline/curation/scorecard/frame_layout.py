"""The pixel-based scores of one frame: typography and composition from one saliency map."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image

from style_pipeline.curation.scorecard.composition import Composition, composition_score
from style_pipeline.curation.scorecard.saliency import analysis_gray, spectral_residual
from style_pipeline.curation.scorecard.text_detection import TextDetector
from style_pipeline.curation.scorecard.typography import Typography, typography_score

OCR_LONG_EDGE = 960  # text boxes are found at this size, then scaled to the analysis image


@dataclass(frozen=True)
class FrameLayout:
    typography: Typography
    composition: Composition


def layout_scores(rgb: np.ndarray, detector: TextDetector, long_edge: int = 256) -> FrameLayout:
    """Typography and composition of a uint8 RGB image."""
    h, w = rgb.shape[:2]
    scale = min(1.0, OCR_LONG_EDGE / max(h, w))
    ocr_image = rgb
    if scale < 1.0:
        ocr_image = np.asarray(
            Image.fromarray(rgb).resize(
                (round(w * scale), round(h * scale)), Image.Resampling.BILINEAR
            )
        )
    gray = analysis_gray(rgb, long_edge)
    factor = np.array([gray.shape[1] / ocr_image.shape[1], gray.shape[0] / ocr_image.shape[0]])
    boxes = [np.asarray(b, np.float32) * factor for b in detector.boxes(ocr_image)]
    saliency = spectral_residual(gray)
    return FrameLayout(
        typography=typography_score(gray, boxes, saliency),
        composition=composition_score(gray, saliency),
    )


def load_layout(path: str | os.PathLike, detector: TextDetector, long_edge: int) -> FrameLayout:
    with Image.open(path) as image:
        return layout_scores(np.asarray(image.convert("RGB")), detector, long_edge)
