"""Benchmark corpus for dedup and quality, built from photographs shipped in pip packages.

Sources: scikit-image's data folder, scikit-learn's sample images and matplotlib's sample
data (nothing is downloaded). Each source gives distinct *base* images (the whole picture,
its four quadrants, its centre and its four edge-centre half crops); each base gets
near-duplicates (JPEG q40, half size, 90% crop, +15% brightness, 2-degree rotation) and
defects (Gaussian blur, dark, overexposed, noise). All files are JPEG q95 unless noted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

BASE_LONG_EDGE = 320
NEAR_DUPLICATES = ("jpeg_q40", "half_size", "crop_90", "bright_15", "rotate_2")
DEFECTS = ("blur", "dark", "overexposed", "noise")
# Left out: scientific imagery that is dark, flat or soft by nature (hubble, retina, the
# out-of-focus microscopy "cell"), document scans and graphics; they are not photographs
# with an exposure or focus problem.
SKIMAGE_SOURCES = (
    "astronaut",
    "brick",
    "camera",
    "chelsea",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "immunohistochemistry",
    "moon",
    "rocket",
)


@dataclass(frozen=True)
class CorpusImage:
    path: Path
    base: str  # the base image this one derives from
    variant: str  # "base", a near-duplicate kind or a defect kind


def source_images() -> dict[str, np.ndarray]:
    """name -> RGB uint8 array of every source photograph."""
    import matplotlib.cbook
    import skimage.data
    from sklearn.datasets import load_sample_images

    out = {name: getattr(skimage.data, name)() for name in SKIMAGE_SOURCES}
    out["motorcycle"] = skimage.data.stereo_motorcycle()[0]
    china, flower = load_sample_images().images
    out["china"], out["flower"] = china, flower
    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
        out["grace_hopper"] = np.asarray(Image.open(fh).convert("RGB"))
    return {k: np.dstack([v] * 3) if v.ndim == 2 else v[..., :3] for k, v in out.items()}


def _fit(image: np.ndarray, long_edge: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = long_edge / max(h, w)
    if scale >= 1:
        return image
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def base_crops(image: np.ndarray) -> dict[str, np.ndarray]:
    """Whole image, quadrants, centre and edge-centre half crops (>= 50% apart)."""
    h, w = image.shape[:2]
    hh, hw = h // 2, w // 2
    qh, qw = h // 4, w // 4
    boxes = {
        "full": (0, 0, h, w),
        "q00": (0, 0, hh, hw),
        "q01": (0, hw, hh, w),
        "q10": (hh, 0, h, hw),
        "q11": (hh, hw, h, w),
        "centre": (qh, qw, qh + hh, qw + hw),
        "top": (0, qw, hh, qw + hw),
        "bottom": (hh, qw, h, qw + hw),
        "left": (qh, 0, qh + hh, hw),
        "right": (qh, hw, qh + hh, w),
    }
    return {k: _fit(image[y0:y1, x0:x1], BASE_LONG_EDGE) for k, (y0, x0, y1, x1) in boxes.items()}


def near_duplicate(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One near-duplicate of ``image`` (JPEG q40 is applied when saving)."""
    h, w = image.shape[:2]
    if kind == "jpeg_q40":
        return image
    if kind == "half_size":
        return cv2.resize(image, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
    if kind == "crop_90":
        ch, cw = round(h * 0.9), round(w * 0.9)
        y0, x0 = (h - ch) // 2, (w - cw) // 2
        return image[y0 : y0 + ch, x0 : x0 + cw]
    if kind == "bright_15":
        return np.clip(image.astype(np.float32) * 1.15, 0, 255).astype(np.uint8)
    if kind == "rotate_2":
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), 2.0, 1.0)
        return cv2.warpAffine(image, matrix, (w, h), borderMode=cv2.BORDER_REFLECT_101)
    raise ValueError(f"unknown near-duplicate kind {kind!r}")


def defect(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    """One degraded copy: blur sigma 2-4 px, dark x0.2-0.3, overexposed x2-3, noise 6-12%."""
    x = image.astype(np.float32)
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(2.0, 4.0)))
    if kind == "dark":
        x = x * rng.uniform(0.2, 0.3)
    elif kind == "overexposed":
        x = x * rng.uniform(2.0, 3.0)
    elif kind == "noise":
        x = x + rng.normal(0.0, 255 * rng.uniform(0.06, 0.12), x.shape)
    else:
        raise ValueError(f"unknown defect kind {kind!r}")
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _save(image: np.ndarray, path: Path, quality: int = 95) -> Path:
    Image.fromarray(image).save(path, quality=quality)
    return path


def build_corpus(out: Path, seed: int = 0) -> tuple[list[CorpusImage], list[CorpusImage]]:
    """Write ``out/dedup`` (bases + near-duplicates) and ``out/quality`` (bases + defects)."""
    rng = np.random.default_rng(seed)
    (out / "dedup").mkdir(parents=True, exist_ok=True)
    (out / "quality").mkdir(parents=True, exist_ok=True)
    dedup, quality = [], []
    for source, image in source_images().items():
        for crop, base in base_crops(image).items():
            name = f"{source}-{crop}"
            for folder, items in (("dedup", dedup), ("quality", quality)):
                path = _save(base, out / folder / f"{name}.jpg")
                items.append(CorpusImage(path, name, "base"))
            for kind in NEAR_DUPLICATES:
                q = 40 if kind == "jpeg_q40" else 95
                img = near_duplicate(base, kind, rng)
                path = _save(img, out / "dedup" / f"{name}~{kind}.jpg", q)
                dedup.append(CorpusImage(path, name, kind))
            for kind in DEFECTS:
                path = _save(defect(base, kind, rng), out / "quality" / f"{name}~{kind}.jpg")
                quality.append(CorpusImage(path, name, kind))
    return dedup, quality
