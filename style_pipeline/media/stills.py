"""Standardize a photo into the JPEG every later stage reads.

Steps: EXIF orientation applied, converted to 8-bit sRGB-ish RGB (alpha composited on
white, palette / CMYK / 16-bit / float modes handled, an embedded ICC profile converted
to sRGB), long edge capped with Lanczos (never upscaled), saved as a baseline JPEG without
metadata (no EXIF, so no GPS leaks downstream). The same input gives the same bytes.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, ImageOps

_SRGB = ImageCms.createProfile("sRGB")
_WHITE = (255, 255, 255)


def target_size(size: tuple[int, int], max_edge: int) -> tuple[int, int]:
    """``size`` scaled so its long edge is at most ``max_edge`` (never enlarged)."""
    w, h = size
    if max_edge < 1:
        raise ValueError(f"max_edge must be >= 1, got {max_edge}")
    long_edge = max(w, h)
    if long_edge <= max_edge:
        return w, h
    scale = max_edge / long_edge
    return max(1, round(w * scale)), max(1, round(h * scale))


def _high_bit_to_8(img: Image.Image) -> Image.Image:
    """16-bit and 32-bit integer / float greyscale to 8-bit ``L``."""
    arr = np.asarray(img)
    if img.mode == "F":
        top = 1.0 if float(np.nanmax(arr, initial=0.0)) <= 1.0 else 255.0
        arr = np.nan_to_num(arr) / top * 255.0
    elif img.mode.startswith("I;16") or float(arr.max(initial=0)) > 255:
        arr = arr.astype(np.float64) / 257.0  # 0..65535 -> 0..255
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), "L")


def _flatten_alpha(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*_WHITE, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


_ICC_OUTPUT = {"RGB": "RGB", "RGBA": "RGBA", "CMYK": "RGB", "L": "RGB"}


def _apply_icc(img: Image.Image) -> Image.Image:
    """Convert from an embedded non-sRGB ICC profile to sRGB (Adobe RGB, Display P3, CMYK
    press profiles...). Images without a profile, or already sRGB, are returned as is; an
    unreadable profile is ignored (the plain mode conversion follows)."""
    icc = img.info.get("icc_profile")
    if not icc or img.mode not in _ICC_OUTPUT:
        return img
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if "srgb" in ImageCms.getProfileDescription(source).lower():
            return img
        converted = ImageCms.profileToProfile(img, source, _SRGB, outputMode=_ICC_OUTPUT[img.mode])
        if converted is None:  # only with inPlace=True, which is not used here
            raise RuntimeError("ImageCms.profileToProfile returned no image")
        return converted
    except (ImageCms.PyCMSError, OSError, ValueError):
        return img


def to_rgb(img: Image.Image) -> Image.Image:
    """Any Pillow mode as 8-bit RGB (transparent areas become white)."""
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        img = _high_bit_to_8(img)
    img = _apply_icc(img)
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        return _flatten_alpha(img)
    return img if img.mode == "RGB" else img.convert("RGB")


def _draft_for(img: Image.Image, max_edge: int) -> None:
    """Let the JPEG decoder downscale by 1/2..1/8 while staying >= the final size."""
    if img.format != "JPEG":
        return
    w, h = img.size
    scale = max_edge / max(w, h)
    if scale < 0.5:
        img.draft(None, (math.ceil(w * scale), math.ceil(h * scale)))


def standardize_still(src: Path, dst: Path, *, max_edge: int, jpeg_quality: int) -> tuple[int, int]:
    """Write ``src`` as a standardized RGB JPEG at ``dst``; return its (width, height)."""
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")
    with Image.open(src) as opened:
        _draft_for(opened, max_edge)
        img = ImageOps.exif_transpose(opened)
        img = to_rgb(img)
    size = target_size(img.size, max_edge)
    if size != img.size:
        img = img.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    img.save(dst, format="JPEG", quality=jpeg_quality, optimize=True, subsampling="4:2:0")
    return img.size


@dataclass(frozen=True)
class StillJob:
    """One photo to standardise, as plain values a pool worker can receive."""

    src: Path
    dst: Path
    max_edge: int
    jpeg_quality: int


def standardize_job(job: StillJob) -> tuple[tuple[int, int], float]:
    """:func:`standardize_still` of ``job``: the output's (width, height) and seconds taken.
    Module-level in this light module (Pillow and numpy only), so a pool worker that runs
    it starts fast."""
    started = time.perf_counter()
    size = standardize_still(job.src, job.dst, max_edge=job.max_edge, jpeg_quality=job.jpeg_quality)
    return size, time.perf_counter() - started
