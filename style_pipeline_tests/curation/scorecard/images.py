"""Constructed images for the scorecard tests (subjects, horizons, text, a calm sky)."""

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

SIZE = (480, 320)


def plain(colour=(110, 140, 170)) -> np.ndarray:
    return np.full((SIZE[1], SIZE[0], 3), colour, np.uint8)


def subject_at(cx: int, cy: int) -> np.ndarray:
    img = plain()
    cv2.circle(img, (cx, cy), 30, (230, 60, 40), -1)
    return img


def horizon(angle_deg: float) -> np.ndarray:
    w, h = SIZE
    img = np.full((h, w, 3), (80, 120, 60), np.uint8)
    rise = (w / 2) * np.tan(np.radians(angle_deg))
    sky = np.array([[0, 0], [w, 0], [w, h / 2 - rise], [0, h / 2 + rise]], np.int32)
    cv2.fillPoly(img, [sky], (180, 200, 230))
    return img


def with_text(img: np.ndarray) -> np.ndarray:
    out = Image.fromarray(img.copy())
    draw = ImageDraw.Draw(out)
    font = ImageFont.load_default(size=40)
    draw.text((20, 30), "BIG HEADLINE", fill=(255, 255, 255), font=font)
    draw.text((20, 200), "more words here", fill=(20, 20, 20), font=font)
    return np.asarray(out)


def busy(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random((SIZE[1], SIZE[0], 3)) * 255).astype(np.uint8)


def sky_over_busy() -> np.ndarray:
    img = busy()
    img[: SIZE[1] // 2] = plain()[: SIZE[1] // 2]
    return img
