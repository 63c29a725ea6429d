"""The faces of an image, cached by content: one JSON object per (image sha256, fingerprint).

The fingerprint hashes what decides the faces: the face models' identity (detector,
embedder, weight files, library versions) and the settings ``find_faces`` reads
(``upsample``, ``min_detector_score``, ``min_face_px``, ``max_edge``). A re-run of the
same frames with the same models and settings reads every frame's faces back and runs
no model; an image without faces is cached too (an empty list). JSON, not pickle: an
entry is readable by anyone, and a float32 descriptor survives the round trip exactly
(its shortest decimal form parses back to the same float32). An entry that cannot be
read back (torn, wrong shape, not finite) is a logged miss, recomputed and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from typing import Any

import numpy as np

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.curation.face_embeddings import DetectedFace
from style_pipeline.models.faces import FaceModels
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)
CACHE_FORMAT = 1  # bump when DetectedFace's meaning or the entry layout changes


def cache_fingerprint(models: FaceModels, settings: CharacterSettings) -> str:
    """16 hex digits naming the models and the settings that shape ``find_faces``."""
    shaping = settings.model_dump(include={"upsample", "min_detector_score", "min_face_px"})
    shaping["max_edge"] = settings.max_edge
    text = json.dumps(
        {"format": CACHE_FORMAT, "models": models.identity, "settings": shaping}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def face_to_json(face: DetectedFace) -> dict[str, Any]:
    return {
        "box": list(face.box),
        "score": face.score,
        "landmarks": list(face.landmarks),
        "blur": face.blur,
        "embedding": None if face.embedding is None else [float(v) for v in face.embedding],
    }


def face_from_json(entry: dict[str, Any], dim: int) -> DetectedFace:
    """A cached face, or ``ValueError`` when the entry is not one of ``dim``-d faces."""
    box = tuple(int(v) for v in entry["box"])
    if len(box) != 4:
        raise ValueError(f"box has {len(box)} values")
    embedding = entry["embedding"]
    vector = None
    if embedding is not None:
        vector = np.asarray(embedding, dtype=np.float32)
        if vector.shape != (dim,) or not np.isfinite(vector).all():
            raise ValueError(f"embedding {vector.dtype}{vector.shape} is not {dim} finite floats")
    score, blur = float(entry["score"]), float(entry["blur"])
    landmarks = tuple(float(v) for v in entry["landmarks"])
    if not all(math.isfinite(v) for v in (score, blur, *landmarks)):
        raise ValueError("score, blur or landmarks not finite")
    return DetectedFace((box[0], box[1], box[2], box[3]), score, landmarks, blur, vector)


class FaceCache:
    """Faces per image sha256 under ``<cache_dir>/faces/<fingerprint>/`` in a Store."""

    def __init__(self, store: Store, models: FaceModels, settings: CharacterSettings):
        self.store = store
        self.dim = models.embedding_dim
        self.cache_dir = settings.cache_dir
        self.fingerprint = cache_fingerprint(models, settings)
        self.unreadable: list[str] = []  # keys of entries that failed to load (then misses)

    def key(self, sha256: str) -> str:
        return layout.face_cache_key(self.cache_dir, self.fingerprint, sha256)

    def get(self, sha256: str) -> list[DetectedFace] | None:
        """The cached faces (maybe none), or None on a miss."""
        key = self.key(sha256)
        if not self.store.exists(key):
            return None
        data = self.store.read_bytes(key)  # store errors propagate: only bad bytes are a miss
        try:
            document = json.loads(data)
            if document.get("format") != CACHE_FORMAT:
                raise ValueError(f"format {document.get('format')!r}")
            return [face_from_json(entry, self.dim) for entry in document["faces"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.unreadable.append(key)
            log.warning("face cache entry %s is unreadable (%s): a miss", key, str(exc)[:200])
            return None

    def put(self, sha256: str, faces: list[DetectedFace]) -> None:
        document = {"format": CACHE_FORMAT, "faces": [face_to_json(f) for f in faces]}
        self.store.put_bytes(json.dumps(document, separators=(",", ":")).encode(), self.key(sha256))
