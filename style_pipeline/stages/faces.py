"""The ``faces`` stage: every face of every frame of the day, with its descriptor.

Each frame's faces (box, detector score, landmarks, blur of the face crop, 128-d dlib
descriptor) come from the face cache by the frame's content sha256 when an earlier run
found them with the same models and settings; the rest are read from the store (local
copies of S3 objects) and scanned by ``workers`` threads (dlib's HOG detector releases
the GIL), identical content once, each result cached as soon as it comes back. Boxes are
in the frame's pixels, face 0 is the largest. Every frame is scanned, whatever the
quality gate said: the ``characters`` asset and the selection decide what a face in a
rejected frame is worth.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import polars as pl

from style_pipeline.contracts.characters import CharacterSettings, FaceRecord
from style_pipeline.contracts.curation import FaceConfig
from style_pipeline.curation.face_cache import FaceCache
from style_pipeline.curation.face_embeddings import DetectedFace, faces_in_files
from style_pipeline.models.faces import FaceModels, load_face_models
from style_pipeline.parallel import ItemError, progress_log, resolve_workers
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema, records_to_frame

FACES_SCHEMA = polars_schema(FaceRecord)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FaceFacts:
    """What the ``faces`` asset reports besides the table."""

    frames: int
    frames_with_faces: int
    faces: int
    embedded: int  # faces with a descriptor
    computed: int  # distinct frame contents scanned by the models (cache misses)
    cached: int  # distinct frame contents read from the cache
    scanned_faces: int  # faces found in the computed frames
    scan_seconds: float  # wall time of the scan of the misses
    workers: int  # threads that scanned them (1: the step's own thread)
    models: Mapping[str, str | int] = field(default_factory=dict)
    fallback_reason: str = ""  # why auto took OpenCV ('' otherwise)
    unreadable: tuple[str, ...] = ()  # cache keys that could not be read (recomputed)

    @property
    def frames_per_s(self) -> float:
        return self.computed / self.scan_seconds if self.scan_seconds > 0 else 0.0

    @property
    def faces_per_s(self) -> float:
        return self.scanned_faces / self.scan_seconds if self.scan_seconds > 0 else 0.0


def empty_faces_table() -> pl.DataFrame:
    """A ``faces`` table with no rows and every column typed."""
    return pl.DataFrame(schema=FACES_SCHEMA)


def find_partition_faces(
    frames: pl.DataFrame,
    store: Store,
    settings: CharacterSettings,
    opencv: FaceConfig | None = None,
    *,
    workers: int = 0,
    log: Callable[[str], None] | None = None,
) -> tuple[pl.DataFrame, FaceFacts]:
    """``faces`` rows of the day's frames (frame order, largest face first) and facts.

    ``opencv``: the OpenCV detector's files (``curation.quality.faces``) for the fallback;
    ``workers``: threads scanning cache misses (0: one per CPU, 1: this thread).
    """
    models = load_face_models(settings, opencv)
    cache = FaceCache(store, models, settings)
    found: dict[str, list[DetectedFace]] = {}
    missing: dict[str, str] = {}  # sha256 -> frame key
    for sha, key in zip(frames["sha256"], frames["path"], strict=True):
        if sha in found or sha in missing:
            continue
        cached = cache.get(sha)
        if cached is None:
            missing[sha] = key
        else:
            found[sha] = cached
    n_cached = len(found)
    n_workers = min(resolve_workers(workers), max(1, len(missing)))
    started = time.perf_counter()
    if missing:
        _scan(missing, store, models, settings, opencv, n_workers, cache, found, log or _log.info)
    scan_seconds = time.perf_counter() - started

    records = []
    for frame_id, sha in zip(frames["frame_id"], frames["sha256"], strict=True):
        records += face_records(frame_id, found[sha], models)
    table = records_to_frame(records, FaceRecord) if records else empty_faces_table()
    facts = FaceFacts(
        frames=frames.height,
        frames_with_faces=table["frame_id"].n_unique() if table.height else 0,
        faces=table.height,
        embedded=int(table["embedding"].is_not_null().sum()) if table.height else 0,
        computed=len(missing),
        scanned_faces=sum(len(found[sha]) for sha in missing),
        cached=n_cached,
        scan_seconds=scan_seconds,
        workers=n_workers if missing else 0,
        models=models.metadata(),
        fallback_reason=models.fallback_reason,
        unreadable=tuple(cache.unreadable),
    )
    return table, facts


def _scan(
    missing: dict[str, str],
    store: Store,
    models: FaceModels,
    settings: CharacterSettings,
    opencv: FaceConfig | None,
    workers: int,
    cache: FaceCache,
    found: dict[str, list[DetectedFace]],
    log: Callable[[str], None],
) -> None:
    """Faces of the ``missing`` frames into ``found`` and the cache, as they come back."""
    todo = list(missing.items())
    with store.local_copies([key for _, key in todo]) as local:
        results = faces_in_files(
            (str(local[key]) for _, key in todo),
            settings,
            opencv,
            workers=workers,
            total=len(todo),
            progress=progress_log(log, "faces", "frames"),
            models=models,
        )
        for (sha, key), result in zip(todo, results, strict=True):
            if isinstance(result, ItemError):
                result.reraise(f"frame {key}")
            found[sha] = result
            cache.put(sha, result)


def face_records(frame_id: str, faces: list[DetectedFace], models: FaceModels) -> list[FaceRecord]:
    """One ``FaceRecord`` per face of a frame, ``face_index`` 0 for the largest."""
    return [
        FaceRecord(
            frame_id=frame_id,
            face_index=index,
            x0=face.box[0],
            y0=face.box[1],
            x1=face.box[2],
            y1=face.box[3],
            detector=models.detector_name,
            detector_score=face.score,
            landmarks=list(face.landmarks),
            blur=face.blur,
            embedding=None if face.embedding is None else face.embedding.tolist(),
            embedder=models.embedder_name if face.embedding is not None else None,
        )
        for index, face in enumerate(faces)
    ]
