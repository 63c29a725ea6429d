"""Spectral-residual saliency (Hou and Zhang, CVPR 2007) with numpy and OpenCV.

The installed ``opencv-python-headless`` has no ``cv2.saliency`` (that is opencv-contrib),
so the few lines of the method are here: on a 64 px wide luminance image, the log
amplitude spectrum minus its 3x3 local mean is the "spectral residual"; transformed back
with the original phase, squared and blurred it marks what stands out. The map is resized
to the analysis image and scaled to [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

SPECTRAL_WIDTH = 64


def analysis_gray(rgb: np.ndarray, long_edge: int) -> np.ndarray:
    """float32 luminance in [0, 1], area-downscaled so its long edge is <= ``long_edge``."""
    image = np.asarray(rgb)
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    h, w = image.shape[:2]
    scale = min(1.0, long_edge / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    return gray.astype(np.float32) / 255.0


def spectral_residual(gray: np.ndarray) -> np.ndarray:
    """Saliency in [0, 1] with the shape of ``gray`` (all zeros for a flat image)."""
    h, w = gray.shape
    small_h = max(8, round(SPECTRAL_WIDTH * h / w))
    small = cv2.resize(gray, (SPECTRAL_WIDTH, small_h), interpolation=cv2.INTER_AREA)
    spectrum = np.fft.fft2(small)
    log_amp = np.log(np.abs(spectrum) + 1e-8)
    phase = np.angle(spectrum)
    residual = log_amp - cv2.blur(log_amp.astype(np.float32), (3, 3))
    back = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    back = cv2.GaussianBlur(back.astype(np.float32), (0, 0), 2.5)
    saliency = cv2.resize(back, (w, h), interpolation=cv2.INTER_LINEAR)
    if float(np.std(small)) < 1e-4:
        return np.zeros_like(gray, dtype=np.float32)
    lo, hi = float(saliency.min()), float(saliency.max())
    return ((saliency - lo) / max(hi - lo, 1e-12)).astype(np.float32)
