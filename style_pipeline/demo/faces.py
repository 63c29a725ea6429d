"""Real faces for the demo, tests and the characters benchmark, and augmented views of them.

Two real, distinct people ship inside installed packages: Grace Hopper
(``matplotlib``'s sample ``grace_hopper.jpg``, a runtime dependency) and Eileen Collins
(``skimage.data.astronaut()``, scikit-image: a dev/bench dependency, so ``astronaut`` is
``None`` without it). ``augment`` makes a view a face matcher must still recognise: a crop
that keeps the face, a flip, brightness, gamma, scale, a small rotation, noise and JPEG.

The demo's reference character is Grace Hopper (``make_demo_character``): its source is
installed wherever the pipeline is, so ``make demo`` always shows matches; the astronaut's
views, when scikit-image is there, are faces with no reference (an ``unknown_<n>`` group).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

DEMO_CHARACTER = "grace"
DEMO_TRIGGER = "grace_sps"


@dataclass(frozen=True)
class Person:
    """A source photo and where its face is (x0, y0, x1, y1, pixels of ``image``)."""

    name: str
    image: np.ndarray  # H x W x 3 uint8 RGB
    face: tuple[int, int, int, int]


def grace_hopper() -> Person:
    """Grace Hopper (512 x 600), from matplotlib's sample data."""
    from matplotlib import cbook

    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    with Image.open(path) as img:
        rgb = np.asarray(img.convert("RGB")).copy()
    return Person("grace", rgb, (180, 139, 366, 325))


def astronaut() -> Person | None:
    """Eileen Collins (512 x 512), from scikit-image; None when it is not installed."""
    try:
        from skimage import data
    except ImportError:
        return None
    return Person("eileen", np.ascontiguousarray(data.astronaut()), (175, 76, 265, 166))


@dataclass(frozen=True)
class View:
    """An augmented photo and where the person's face is in it (x0, y0, x1, y1)."""

    image: np.ndarray
    face: tuple[int, int, int, int]

    def holds(self, box: tuple[int, int, int, int]) -> bool:
        """Whether a detected ``box`` is this face (its centre lies inside the face)."""
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0, x1, y1 = self.face
        return x0 <= cx <= x1 and y0 <= cy <= y1


def _crop_window(
    face: tuple[int, int, int, int], w: int, h: int, rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """A random window that keeps the face with at least half a face of margin around it."""
    x0, y0, x1, y1 = face
    pad_x, pad_y = (x1 - x0) // 2, (y1 - y0) // 2
    left = int(rng.integers(0, max(0, x0 - pad_x) + 1))
    top = int(rng.integers(0, max(0, y0 - pad_y) + 1))
    right = int(rng.integers(min(w, x1 + pad_x), w + 1))
    bottom = int(rng.integers(min(h, y1 + pad_y), h + 1))
    return left, top, right, bottom


def _jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    out = io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=quality)
    with Image.open(io.BytesIO(out.getvalue())) as img:
        return np.asarray(img.convert("RGB")).copy()


def augment(person: Person, rng: np.random.Generator, *, strength: float = 1.0) -> View:
    """One view of ``person``: crop, flip, scale, rotation, brightness, gamma, noise, JPEG.

    ``strength`` in [0, 1] scales the ranges (1.0: scale 0.6-1.4, rotation up to 10
    degrees, brightness 0.6-1.4, gamma 0.6-1.6, noise sigma up to 8 levels, JPEG quality
    35-95); the face stays in the view (at least ~50 px tall) and its box is returned.
    """
    s = float(np.clip(strength, 0.0, 1.0))
    h, w = person.image.shape[:2]
    left, top, right, bottom = _crop_window(person.face, w, h, rng)
    image = person.image[top:bottom, left:right]
    x0, y0, x1, y1 = (person.face[0] - left, person.face[1] - top,
                      person.face[2] - left, person.face[3] - top)  # fmt: skip
    if rng.random() < 0.5:
        image = image[:, ::-1]
        x0, x1 = image.shape[1] - x1, image.shape[1] - x0
    scale = float(rng.uniform(1 - 0.4 * s, 1 + 0.4 * s))
    size = (max(16, round(image.shape[1] * scale)), max(16, round(image.shape[0] * scale)))
    image = cv2.resize(
        np.ascontiguousarray(image),
        size,
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]], dtype=np.float64) * scale
    matrix = cv2.getRotationMatrix2D(
        (size[0] / 2, size[1] / 2), float(rng.uniform(-10 * s, 10 * s)), 1.0
    )
    image = cv2.warpAffine(image, matrix, size, borderMode=cv2.BORDER_REFLECT)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    box = (*np.floor(moved.min(axis=0)).astype(int), *np.ceil(moved.max(axis=0)).astype(int))
    x = image.astype(np.float32) / 255.0
    x = np.clip(x * rng.uniform(1 - 0.4 * s, 1 + 0.4 * s), 0, 1)
    x = x ** float(rng.uniform(1 - 0.4 * s, 1 + 0.6 * s))
    x = x + rng.normal(0.0, rng.uniform(0, 8 * s) / 255.0, size=x.shape)
    image = (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)
    quality = int(rng.integers(round(95 - 60 * s), 96))
    return View(_jpeg(image, quality), (int(box[0]), int(box[1]), int(box[2]), int(box[3])))


def face_crop(person: Person, margin: float = 0.6) -> np.ndarray:
    """The face with ``margin`` x its size around it on each side (a reference photo)."""
    h, w = person.image.shape[:2]
    x0, y0, x1, y1 = person.face
    mx, my = round((x1 - x0) * margin), round((y1 - y0) * margin)
    return person.image[max(0, y0 - my) : min(h, y1 + my), max(0, x0 - mx) : min(w, x1 + mx)]


def write_jpeg(image: np.ndarray, path: Path, quality: int = 92) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="JPEG", quality=quality)
    return path


def make_demo_character(references_dir: str | Path) -> Path | None:
    """``<references_dir>/grace/``: two reference photos and a ``character.yaml`` (trigger
    word ``grace_sps``), written only when the folder does not exist yet (a user's own
    references are never touched). Returns the folder when it was written."""
    folder = Path(references_dir) / DEMO_CHARACTER
    if folder.exists():
        return None
    person = grace_hopper()
    write_jpeg(face_crop(person, 0.6), folder / "portrait.jpg")
    write_jpeg(face_crop(person, 1.0)[:, ::-1], folder / "portrait_mirrored.jpg")
    (folder / "character.yaml").write_text(
        f"# the demo's reference character (matplotlib's sample photo of Grace Hopper)\n"
        f"trigger_word: {DEMO_TRIGGER}\naliases: [grace hopper]\nmax_share: 0.5\n"
    )
    return folder


def make_face_photos(out_dir: str | Path, *, seed: int = 0, per_person: int = 3) -> list[Path]:
    """``per_person`` augmented views of Grace Hopper and (with scikit-image) of the
    astronaut, as JPEGs ``face_<person>_<n>.jpg``."""
    rng = np.random.default_rng(seed)
    out = Path(out_dir)
    people = [p for p in (grace_hopper(), astronaut()) if p is not None]
    return [
        write_jpeg(
            augment(person, rng, strength=0.6).image, out / f"face_{person.name}_{i:02d}.jpg"
        )
        for person in people
        for i in range(per_person)
    ]
