"""The ``characters`` stage: a label for every face of the day's ``faces`` table.

Each embedded face is matched to the characters' reference photos (``data/characters/``,
``curation/character_refs.py``); the faces that match no one are grouped into
``unknown_<n>`` groups (``curation/character_match.py``), and each group leaves one
representative crop, ``characters/<date>/unknown_<n>.jpg``: copy it into
``data/characters/<name>/`` and the next run names that group. Faces without a descriptor
(too small, or OpenCV's detector) and HDBSCAN's noise get no label. The table keeps the
faces table's order: one row per face.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from style_pipeline.contracts.characters import CharacterRecord, CharacterSettings
from style_pipeline.contracts.curation import FaceConfig
from style_pipeline.curation.character_match import (
    finite_or_none,
    group_unknown,
    match_faces,
    unknown_label,
)
from style_pipeline.curation.character_refs import (
    References,
    RejectedReference,
    SpecProblem,
    read_specs,
)
from style_pipeline.media.pictures import Tile, contact_sheet, jpeg_bytes, open_rgb
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema

CHARACTERS_SCHEMA = polars_schema(CharacterRecord)
CROP_MARGIN = 0.4  # of the face's size, on each side of a representative crop
CROP_EDGE = 256  # long edge of a representative crop (px)
SHEET_NAME = "unknown_groups.jpg"


@dataclass(frozen=True)
class UnknownGroup:
    label: str
    faces: int
    frame_id: str  # the representative face's frame
    face_index: int
    crop_key: str | None  # its crop in the store (None: the frame could not be read)


@dataclass(frozen=True)
class CharacterFacts:
    """What the ``characters`` asset reports besides the table."""

    faces: int
    embedded: int
    matched: Mapping[str, int]  # every character with a spec, 0 included
    unknown: tuple[UnknownGroup, ...]
    unlabelled: int  # faces with no label: no descriptor, or HDBSCAN noise
    references: Mapping[str, int]  # usable reference photos per character
    rejected: tuple[RejectedReference, ...] = ()
    problems: tuple[SpecProblem, ...] = ()
    notes: tuple[str, ...] = ()
    sheet_key: str | None = None  # contact sheet of the unknown groups' crops
    timings: Mapping[str, float] = field(default_factory=dict)


def empty_characters_table() -> pl.DataFrame:
    return pl.DataFrame(schema=CHARACTERS_SCHEMA)


def _descriptors(faces: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Row indices of the faces with a descriptor and their (n, dim) float64 matrix."""
    if faces.is_empty():
        return np.zeros(0, np.int64), np.zeros((0, 0))
    has = faces["embedding"].is_not_null().to_numpy()
    rows = np.flatnonzero(has)
    if not len(rows):
        return rows, np.zeros((0, 0))
    vectors = faces["embedding"].filter(pl.Series(has)).to_list()
    return rows, np.asarray(vectors, dtype=np.float64)


def label_faces(
    faces: pl.DataFrame,
    references: References,
    settings: CharacterSettings,
    store: Store,
    partition: str,
    frame_paths: Mapping[str, str] | None = None,
    *,
    sheet: bool = True,
) -> tuple[pl.DataFrame, CharacterFacts]:
    """``characters`` rows (one per face, in the faces table's order) and facts.

    ``frame_paths``: frame_id -> storage key of the frame JPEG (default: the frames
    stage's ``layout.frame_key``), for the unknown groups' crops; ``sheet``: also draw
    ``reports/characters/<date>/unknown_groups.jpg``.
    """
    timings: dict[str, float] = {}
    started = time.perf_counter()
    # Sorted by (frame, face) before matching and grouping: the same faces give the same
    # groups and numbers whatever order the table came in.
    order = faces.with_row_index("_row").sort("frame_id", "face_index") if faces.height else faces
    rows, x = _descriptors(order)
    matches = match_faces(x, references.embeddings, settings.match_threshold, settings.match_margin)
    timings["match"] = time.perf_counter() - started
    started = time.perf_counter()
    unmatched = np.array([i for i, label in enumerate(matches.label) if label is None], np.int64)
    groups = group_unknown(
        x[unmatched] if len(unmatched) else x[:0],
        settings.min_cluster_size,
        settings.match_threshold,
    )
    timings["group"] = time.perf_counter() - started

    n = order.height
    label: list[str | None] = [None] * n
    distance: list[float | None] = [None] * n
    margin: list[float | None] = [None] * n
    conf = np.zeros(n)
    for i, row in enumerate(rows):
        if matches.label[i] is not None:
            label[row] = matches.label[i]
            distance[row] = finite_or_none(matches.distance[i])
            margin[row] = finite_or_none(matches.margin[i])
            conf[row] = matches.confidence[i]
    for j, i in enumerate(unmatched):
        if groups.group[j] >= 0:
            label[rows[i]] = unknown_label(int(groups.group[j]))
            conf[rows[i]] = groups.probability[j]
    matched = [lab is not None and lab in references.specs for lab in label]

    started = time.perf_counter()
    unknown = []
    for number, rep in enumerate(groups.representative):
        face = order.row(int(rows[unmatched[rep]]), named=True)
        name = unknown_label(number)
        key = _save_crop(store, partition, name, face, frame_paths)
        size = int((groups.group == number).sum())
        unknown.append(UnknownGroup(name, size, face["frame_id"], face["face_index"], key))
    _forget_stale_crops(store, partition, {g.label for g in unknown})
    sheet_key = _draw_sheet(store, partition, unknown) if sheet and unknown else None
    timings["crops"] = time.perf_counter() - started

    table = empty_characters_table()
    if n:
        labelled = order.with_columns(
            pl.Series("label", label, pl.String),
            pl.Series("matched", matched, pl.Boolean),
            pl.Series("distance", distance, pl.Float64),
            pl.Series("margin", margin, pl.Float64),
            pl.Series("confidence", conf.astype(np.float64), pl.Float64),
        ).sort("_row")
        table = labelled.select(list(CHARACTERS_SCHEMA.names())).cast(CHARACTERS_SCHEMA)
    facts = CharacterFacts(
        faces=n,
        embedded=len(rows),
        matched={name: label.count(name) for name in references.specs},
        unknown=tuple(unknown),
        unlabelled=label.count(None),
        references={name: len(v) for name, v in references.embeddings.items()},
        rejected=references.rejected,
        problems=references.problems,
        notes=references.notes,
        sheet_key=sheet_key,
        timings={k: round(v, 4) for k, v in timings.items()},
    )
    return table, facts


def _save_crop(
    store: Store,
    partition: str,
    label: str,
    face: Mapping,
    frame_paths: Mapping[str, str] | None,
) -> str | None:
    """The face with a margin, at most ``CROP_EDGE`` px, as ``unknown_group_key``."""
    frame_id = face["frame_id"]
    source = (frame_paths or {}).get(frame_id) or layout.frame_key(partition, frame_id)
    try:
        image = open_rgb(store.read_bytes(source))
    except (FileNotFoundError, OSError, ValueError):
        return None
    x0, y0, x1, y1 = face["x0"], face["y0"], face["x1"], face["y1"]
    mx, my = round((x1 - x0) * CROP_MARGIN), round((y1 - y0) * CROP_MARGIN)
    crop = image.crop(
        (max(0, x0 - mx), max(0, y0 - my), min(image.width, x1 + mx), min(image.height, y1 + my))
    )
    crop.thumbnail((CROP_EDGE, CROP_EDGE), Image.Resampling.LANCZOS)
    return store.put_bytes(jpeg_bytes(crop, quality=92), layout.unknown_group_key(partition, label))


def _forget_stale_crops(store: Store, partition: str, keep: set[str]) -> None:
    """Remove crops of groups an earlier run of the day had and this one has not."""
    for key in store.list(layout.partition_dir(layout.CHARACTERS, partition)):
        label = layout.unknown_group_of(key)
        if label is not None and label not in keep:
            store.delete(key)


def _draw_sheet(store: Store, partition: str, unknown: list[UnknownGroup]) -> str:
    """One tile per unknown group (its crop, its label and size)."""
    tiles = []
    for group in unknown:
        if group.crop_key is None:
            image = Image.new("RGB", (64, 64), (90, 30, 30))
        else:
            image = open_rgb(store.read_bytes(group.crop_key))
        tiles.append(Tile(image, (group.label, f"{group.faces} faces")))
    key = layout.report_key(layout.CHARACTERS, partition, SHEET_NAME)
    store.put_bytes(jpeg_bytes(contact_sheet(tiles, 160, columns=4)), key)
    return key


def characters_partition(
    faces: pl.DataFrame,
    frames: pl.DataFrame | None,
    store: Store,
    settings: CharacterSettings,
    references_dir: Path,
    partition: str,
    *,
    opencv: FaceConfig | None = None,
    sheet: bool = True,
) -> tuple[pl.DataFrame, CharacterFacts]:
    """Load the face models (as the ``faces`` stage does: ``opencv`` for the fallback)
    and the references (their faces cached like the frames'), then ``label_faces``; the
    facts' timings gain ``references``. No character folder: no model is loaded."""
    from style_pipeline.curation.character_refs import load_references
    from style_pipeline.curation.face_cache import FaceCache
    from style_pipeline.models.faces import load_face_models

    started = time.perf_counter()
    specs, problems = read_specs(references_dir)
    if specs:
        models = load_face_models(settings, opencv)
        cache = FaceCache(store, models, settings)
        references = load_references(references_dir, models, settings, cache=cache)
    else:  # nobody to match: no face model to load
        references = References({}, {}, {}, problems=tuple(problems))
    loaded = time.perf_counter() - started
    paths = (
        dict(zip(frames["frame_id"], frames["path"], strict=True)) if frames is not None else None
    )
    table, facts = label_faces(faces, references, settings, store, partition, paths, sheet=sheet)
    timings = {"references": round(loaded, 4), **facts.timings}
    return table, replace(facts, timings=timings)
