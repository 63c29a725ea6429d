"""Procedural test images: smooth 1/f noise with a few hard-edged shapes (no downloads)."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def scene(seed: int, height: int = 192, width: int = 256) -> np.ndarray:
    """A photo-like RGB uint8 image: 1/f colour noise plus random rectangles and disks."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.fftfreq(width)[None, :]
    amplitude = 1.0 / np.maximum(np.hypot(fy, fx), 1.0 / max(height, width)) ** 1.5
    channels = []
    for _ in range(3):
        phase = np.exp(2j * np.pi * rng.random((height, width)))
        field = np.real(np.fft.ifft2(amplitude * phase))
        channels.append((field - field.min()) / (np.ptp(field) + 1e-9))
    img = np.stack(channels, axis=-1) * 160 + 40
    for _ in range(6):
        colour = rng.integers(0, 256, 3).tolist()
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        if rng.random() < 0.5:
            x1, y1 = x0 + int(rng.integers(10, width // 2)), y0 + int(rng.integers(10, height // 2))
            cv2.rectangle(img, (x0, y0), (x1, y1), colour, -1)
        else:
            cv2.circle(img, (x0, y0), int(rng.integers(8, height // 4)), colour, -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` after a JPEG round trip at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def save(image: np.ndarray, path: Path, quality: int = 95) -> Path:
    Image.fromarray(image).save(path, quality=quality)
    return path
