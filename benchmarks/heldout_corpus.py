"""Held-out corpus for the quality gate: native-resolution crops with synthetic defects.

Photographs shipped in pip packages (scikit-image data, scikit-learn sample images,
matplotlib sample data when installed; nothing is downloaded) are split *by photograph*
into a tuning set and a held-out set, fixed below. Each photograph gives several crops at
native resolution (never resized; sizes 35-100% of each side, seeded per photograph), and
each crop gives a clean copy plus one of each defect at a random strength:

- blur: Gaussian (sigma 1.5-4), motion (line 8-16 px, any angle) or defocus (disk radius
  2-5); lengths are in pixels of the 512-px analysis image, so scaled with the crop;
- dark: -2 to -4 EV, overexposed: +1.5 to +3 EV, both from the crop's *metered*
  exposure (average metering: mean linear luminance at 18% grey, as a camera's automatic
  exposure would set it), in linear light with shot + read noise, clipping at the
  sensor's white and a gamma of 1/2.0-1/2.4 (so a photograph shot dark on purpose is not
  "overexposed" merely because +2 EV brought it to a normal exposure);
- noise: Gaussian (sigma 3-8% of full scale) or Poisson (20-80 photons at white);
- jpeg: quality 15-40.
Every image then goes through JPEG q95 (the frames stage's format) unless it is the jpeg
defect. Defects other than blur / dark / overexposed and the clean copies are negatives.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

# Fixed split by source photograph; a test checks the two never share a photograph.
TUNING = ("astronaut", "camera", "coffee", "china", "brick", "grass", "moon", "motorcycle")
HELDOUT = ("chelsea", "rocket", "coins", "gravel", "flower", "grace_hopper")
SPLITS = {"tuning": TUNING, "heldout": HELDOUT}
DEFECTS = ("blur", "dark", "overexposed", "noise", "jpeg")
ANALYSIS_EDGE = 512


@dataclass(frozen=True)
class HeldoutImage:
    name: str  # <photo>-c<k>~<variant>[-<kind>]
    photo: str
    variant: str  # "clean" or one of DEFECTS
    kind: str  # the defect's flavour, e.g. "motion"; "" for clean
    image: np.ndarray  # RGB uint8, after the final JPEG round trip


def source_photo(name: str) -> np.ndarray:
    """RGB uint8 array of one source photograph (KeyError for unknown names)."""
    import skimage.data

    if name == "motorcycle":
        image = skimage.data.stereo_motorcycle()[0]
    elif name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        image = load_sample_image(f"{name}.jpg")
    elif name == "grace_hopper":
        import matplotlib.cbook  # optional: the photograph is skipped without matplotlib

        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
            image = np.asarray(Image.open(fh).convert("RGB"))
    elif name in TUNING + HELDOUT:
        image = getattr(skimage.data, name)()
    else:
        raise KeyError(name)
    return np.dstack([image] * 3) if image.ndim == 2 else np.ascontiguousarray(image[..., :3])


def available_photos(split: str) -> list[str]:
    """Photographs of ``split`` that can be loaded here (matplotlib's is optional)."""
    out = []
    for name in SPLITS[split]:
        try:
            source_photo(name)
        except ImportError:
            continue
        out.append(name)
    return out


def crops(image: np.ndarray, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` native-resolution crops, each side 35-100% of the photograph's."""
    h, w = image.shape[:2]
    out = []
    for _ in range(count):
        ch, cw = (max(64, round(s * rng.uniform(0.35, 1.0))) for s in (h, w))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        out.append(np.ascontiguousarray(image[y0 : y0 + ch, x0 : x0 + cw]))
    return out


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def blur_kernel(kind: str, length: float, rng: np.random.Generator) -> np.ndarray:
    size = int(np.ceil(length)) | 1
    k = np.zeros((size, size), np.float32)
    c = size // 2
    if kind == "motion":
        angle = rng.uniform(0, np.pi)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        cv2.line(k, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
    else:  # defocus: a uniform disk of diameter ``length``
        cv2.circle(k, (c, c), max(1, round(length / 2)), 1.0, -1)
    return k / k.sum()


def expose(image: np.ndarray, ev: float, rng: np.random.Generator) -> np.ndarray:
    """Meter (mean linear luminance -> 18%), shift by ``ev`` stops in linear light, add shot
    + read noise, clip at the sensor's white, re-encode with a gamma."""
    x = image.astype(np.float32) / 255.0
    linear = np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)
    metered = 0.18 / max(float(linear.mean()), 1e-3)
    photons = 4000.0  # full well at white
    signal = rng.poisson(np.clip(linear * metered * 2.0**ev, 0, 4) * photons) / photons
    signal = np.clip(signal + rng.normal(0, 2e-3, x.shape), 0, 1)  # read noise, sensor clip
    return np.round(signal ** (1 / rng.uniform(2.0, 2.4)) * 255).astype(np.uint8)


def degrade(image: np.ndarray, variant: str, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """``(degraded image, kind)``; strengths are drawn from ``rng`` (module docstring)."""
    scale = max(image.shape[:2]) / ANALYSIS_EDGE if max(image.shape[:2]) > ANALYSIS_EDGE else 1
    if variant == "blur":
        kind = str(rng.choice(["gaussian", "motion", "defocus"]))
        if kind == "gaussian":
            return cv2.GaussianBlur(image, (0, 0), rng.uniform(1.5, 4.0) * scale), kind
        length = (rng.uniform(8, 16) if kind == "motion" else rng.uniform(4, 10)) * scale
        return cv2.filter2D(image, -1, blur_kernel(kind, length, rng)), kind
    if variant == "dark":
        return expose(image, -rng.uniform(2.0, 4.0), rng), "ev"
    if variant == "overexposed":
        return expose(image, rng.uniform(1.5, 3.0), rng), "ev"
    if variant == "noise":
        x = image.astype(np.float32)
        if rng.random() < 0.5:
            x = x + rng.normal(0, 255 * rng.uniform(0.03, 0.08), x.shape)
            kind = "gaussian"
        else:
            peak = rng.uniform(20, 80)
            x = rng.poisson(x / 255.0 * peak) / peak * 255.0
            kind = "poisson"
        return np.clip(np.round(x), 0, 255).astype(np.uint8), kind
    if variant == "jpeg":
        return _jpeg(image, int(rng.integers(15, 41))), "q"
    raise ValueError(f"unknown variant {variant!r}")


def heldout_images(split: str, crops_per_photo: int = 6) -> Iterator[HeldoutImage]:
    """Every image of ``split``: per photo and crop, the clean copy then each defect."""
    for photo in available_photos(split):
        seed = zlib.crc32(photo.encode())
        photo_crops = crops(source_photo(photo), crops_per_photo, np.random.default_rng(seed))
        for k, crop in enumerate(photo_crops):
            for v, variant in enumerate(("clean", *DEFECTS)):
                rng = np.random.default_rng([seed, k, v])  # one stream per image
                out, kind = (crop, "") if variant == "clean" else degrade(crop, variant, rng)
                if variant != "jpeg":
                    out = _jpeg(out, 95)
                suffix = f"{variant}-{kind}" if kind else variant
                yield HeldoutImage(f"{photo}-c{k}~{suffix}", photo, variant, kind, out)
