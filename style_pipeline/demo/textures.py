"""Procedural photographic texture for the sample media (no external data).

Detail is sized to the curation gate's analysis resolution (``GATE_EDGE``), so generated
photos and video frames look equally sharp to ``quality_scores`` at any size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

GATE_EDGE = 512  # long edge at which the curation gate analyses an image (QualityConfig)


def unit(width: int, height: int) -> float:
    """Source pixels per pixel of the gate's analysis image (>= 1). Detail is sized in these
    units, so every resolution looks equally sharp to the gate after its downscale."""
    return max(1.0, max(width, height) / GATE_EDGE)


def stretch(x: np.ndarray) -> np.ndarray:
    """``x`` with its 1st..99th percentiles (of a subsample) mapped to 0..1, clipped."""
    lo, hi = np.percentile(x[::5, ::5], (1, 99))
    return np.clip((x - lo) / max(float(hi - lo), 1e-6), 0, 1).astype(np.float32)


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """A random lattice with spacing ``cell`` px, bicubically interpolated (about [0, 1])."""
    gh, gw = int(h / cell) + 3, int(w / cell) + 3
    grid = rng.random((gh, gw), dtype=np.float32)
    size = (max(w, round((gw - 1) * cell)), max(h, round((gh - 1) * cell)))
    return cv2.resize(grid, size, interpolation=cv2.INTER_CUBIC)[:h, :w]


def fractal(rng: np.random.Generator, h: int, w: int, coarse: float, fine: float) -> np.ndarray:
    """Multi-octave value noise (amplitude x0.6 per halving of the cell), in [0, 1]."""
    total, amp, cell = np.zeros((h, w), np.float32), 1.0, coarse
    while cell >= fine:
        total += amp * value_noise(rng, h, w, cell)
        amp, cell = amp * 0.6, cell / 2
    return stretch(total)


def ink(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """Fine dark marks in [0, 1]: foliage speckle in a few regions, lines of text-like
    glyphs and thin wires: the sparse, crisp detail a focused photo has."""
    region = value_noise(rng, h, w, max(h, w) / 4)
    leaves = value_noise(rng, h, w, 1.6 * unit)
    cut = np.quantile(region[::8, ::8], 1 - rng.uniform(0.2, 0.4))
    ink = ((region > cut) & (leaves > 0.62)).astype(np.float32)
    thick, size = max(1, round(0.6 * unit)), 5 * unit  # glyph stroke and box
    for _ in range(int(rng.integers(2, 5))):  # text blocks
        x0, y0 = rng.uniform(0, w * 0.8), rng.uniform(0, h * 0.9)
        rows, cols = int(rng.integers(1, 4)), int(rng.integers(6, 24))
        glyphs = rng.random((rows, cols)) < 0.85  # the rest are spaces
        for r, c in zip(*np.nonzero(glyphs), strict=True):
            gx, gy = x0 + c * size, y0 + r * 1.8 * size
            pts = rng.uniform(0, 1, size=(int(rng.integers(2, 4)), 2)) * (0.7 * size, 1.2 * size)
            pts = np.round(pts + (gx, gy)).astype(np.int32)
            cv2.polylines(ink, [pts], False, 1.0, thick, cv2.LINE_AA)
    for _ in range(int(rng.integers(2, 5))):  # wires
        a, b = (int(v) for v in rng.uniform(0, h, size=2))
        cv2.line(ink, (0, a), (w - 1, b), 0.8, max(1, round(0.5 * unit)), cv2.LINE_AA)
    return ink


def shapes(rng: np.random.Generator, canvas: np.ndarray, unit: float, count: int) -> None:
    """Draw ``count`` hard-edged shapes (buildings with windows, polygons, ellipses) with
    random grey or RGB values into ``canvas`` (float32, HxW or HxWx3), in place."""
    h, w = canvas.shape[:2]
    channels = 1 if canvas.ndim == 2 else canvas.shape[2]

    def value(lo: float = 0.05, hi: float = 0.95) -> tuple[float, ...]:
        return tuple(float(v) for v in rng.uniform(lo, hi, size=channels))

    for _ in range(count):
        kind, colour = int(rng.integers(0, 3)), value()
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.04, 0.18) * max(h, w)
        if kind == 0:  # a building: a rectangle with a grid of windows
            x0, x1 = int(cx - r * rng.uniform(0.3, 1)), int(cx + r * rng.uniform(0.3, 1))
            y0, y1 = int(cy - r * rng.uniform(0.5, 1.5)), int(cy + r * rng.uniform(0.2, 0.8))
            cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, -1)
            part = canvas[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)]
            step = max(3, round(rng.uniform(5, 11) * unit))
            yy, xx = np.ogrid[: part.shape[0], : part.shape[1]]
            windows = (yy % step < step * 0.55) & (xx % step < step * 0.5)
            part[windows] = value()
        elif kind == 1:
            angles = np.sort(rng.uniform(0, 2 * math.pi, size=int(rng.integers(3, 7))))
            radii = r * rng.uniform(0.5, 1.0, size=angles.size)
            pts = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
            cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], colour, cv2.LINE_AA)
        else:
            axes = (int(r), int(r * rng.uniform(0.3, 1.0)))
            angle = float(rng.uniform(0, 180))
            cv2.ellipse(canvas, (int(cx), int(cy)), axes, angle, 0, 360, colour, -1, cv2.LINE_AA)


def scene(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """A grey photo-like texture in [0, 1]: soft light, hard-edged shapes, surface grain
    at gate scale and fine dark marks."""
    grey = 0.15 + 0.7 * fractal(rng, h, w, max(h, w) / 3, 8 * unit)
    shapes(rng, grey, unit, int(rng.integers(6, 14)))
    grey *= 0.75 + 0.5 * fractal(rng, h, w, 24 * unit, unit)
    grey *= 1 - 0.6 * ink(rng, h, w, unit)
    return stretch(grey)


def expose(rgb: np.ndarray, mean: float) -> np.ndarray:
    """Tone-map linear-ish RGB (>= 0) to a mean luminance of about ``mean`` with the
    99.7th luminance percentile at 0.93 at most (no blown highlights); uint8."""
    luma = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    current = float(luma[::4, ::4].mean())
    gamma = math.log(mean) / math.log(min(max(current, 0.02), 0.98))
    rgb = np.power(np.clip(rgb, 0, 1), gamma)
    top = float(np.percentile((rgb @ np.array([0.299, 0.587, 0.114], np.float32))[::4, ::4], 99.7))
    rgb *= min(1.0, 0.93 / max(top, 1e-6))
    return np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
