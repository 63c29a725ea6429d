"""A synthetic day with faces: real photos (scikit-image's astronaut, Eileen Collins, and
matplotlib's Grace Hopper, both shipped in installed packages) among face-less ones, and a
``characters`` table whose boxes are dlib HOG's detections on those photos (measured once,
carried through the same crop, flip and resize as the pixels).

Eileen is a named character; Grace is the unknown group ``unknown_0`` (no reference yet).
"""

from __future__ import annotations

import io

import numpy as np
import polars as pl
from PIL import Image, ImageEnhance

from style_pipeline.contracts.characters import CharacterRecord
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame
from style_pipeline_tests.serving.synthetic_day import write_day

SIZE = (384, 256)  # every frame: 3:2
# dlib HOG (upsample 1) on the full photos: (x0, y0, x1, y1), detector score
ASTRONAUT_FACE = (175, 76, 265, 166)  # 1.16
GRACE_FACE = (180, 139, 366, 325)  # 1.27


def _photo(name: str) -> tuple[Image.Image, tuple[int, int, int, int] | None]:
    """A 3:2 crop of the named photo at SIZE, and its face box in the crop's pixels."""
    import matplotlib.cbook
    from skimage import data

    if name == "grace":
        with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as fh:
            full = Image.open(fh).convert("RGB")
        top, face = 80, GRACE_FACE
    elif name == "astronaut":
        full, top, face = Image.fromarray(data.astronaut()), 0, ASTRONAUT_FACE
    else:
        pixels = getattr(data, name)()
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        full, top, face = Image.fromarray(pixels), 0, None
    width = full.width
    height = round(width * SIZE[1] / SIZE[0])
    if height > full.height:  # wider than 3:2: crop the sides instead
        width, height = round(full.height * SIZE[0] / SIZE[1]), full.height
    crop = full.crop((0, top, width, top + height)).resize(SIZE, Image.Resampling.LANCZOS)
    if face is None:
        return crop, None
    sx, sy = SIZE[0] / width, SIZE[1] / height
    x0, y0, x1, y1 = face
    return crop, (round(x0 * sx), round((y0 - top) * sy), round(x1 * sx), round((y1 - top) * sy))


# frame index -> (photo, flipped, brightness, label of its face)
FRAMES = {
    0: ("astronaut", False, 1.0, "eileen"),
    1: ("chelsea", False, 1.0, None),
    2: ("grace", False, 1.0, "unknown_0"),
    3: ("astronaut", True, 1.1, "eileen"),
    4: ("coffee", False, 1.0, None),
    5: ("grace", False, 1.3, "unknown_0"),
    6: ("rocket", False, 1.0, None),
    7: ("camera", False, 1.0, None),
}


def _jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def write_character_day(store: Store, date: str) -> dict[str, list[str]]:
    """An 8-frame day of photos with its characters table; label -> frame ids."""
    ids = write_day(store, date, len(FRAMES), size=SIZE)
    rows = []
    shown: dict[str, list[str]] = {}
    for i, (name, flipped, brightness, label) in FRAMES.items():
        image, box = _photo(name)
        if flipped:
            image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if box is not None:
                box = (SIZE[0] - box[2], box[1], SIZE[0] - box[0], box[3])
        image = ImageEnhance.Brightness(image).enhance(brightness)
        store.put_bytes(_jpeg(image), layout.frame_key(date, ids[i]))
        if box is None:
            continue
        matched = label is not None and not label.startswith("unknown_")
        rows.append(CharacterRecord(
            frame_id=ids[i], face_index=0, label=label, matched=matched,
            distance=0.35 if matched else None, margin=0.2 if matched else None,
            confidence=0.8 if label else 0.0, x0=box[0], y0=box[1], x1=box[2], y1=box[3],
        ))  # fmt: skip
        if label:
            shown.setdefault(label, []).append(ids[i])
    write_characters(store, date, records_to_frame(rows, CharacterRecord))
    return shown


def write_characters(store: Store, date: str, table: pl.DataFrame) -> None:
    out = io.BytesIO()
    table.write_parquet(out)
    store.put_bytes(out.getvalue(), layout.table_key("characters", date))
