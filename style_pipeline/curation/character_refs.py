"""Characters from ``data/characters/<name>/``: their specs (``character.yaml``) and the face
embeddings of their reference photos.

Each sub-folder is a character; its name must match ``CharacterSpec``'s pattern
(``^[a-z0-9][a-z0-9_-]*$``, not ``unknown_*``). ``character.yaml`` is optional (every field
has a default). One bad character never fails the partition: a bad folder name or an invalid
``character.yaml`` skips that character, and the problem is returned by name (``read_specs``)
and logged (``load_specs``). Hidden folders (``.name``) and loose files are ignored.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml
from PIL import Image, ImageOps
from pydantic import ValidationError

from style_pipeline.contracts.characters import CharacterSettings, CharacterSpec

if TYPE_CHECKING:  # the face models load only with load_references (load_specs stays light)
    from style_pipeline.curation.face_cache import FaceCache
    from style_pipeline.curation.face_embeddings import DetectedFace
    from style_pipeline.models.faces import FaceModels

log = logging.getLogger(__name__)

SPEC_FILE = "character.yaml"


@dataclass(frozen=True)
class SpecProblem:
    """A character folder that was skipped: its path and why, in words."""

    path: str
    reason: str


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}"
        for err in exc.errors()
    )


def _read_spec(folder: Path) -> CharacterSpec | SpecProblem:
    """The folder's spec, or the problem that skips it."""
    spec_path = folder / SPEC_FILE
    data: dict[str, Any] = {}
    if spec_path.is_file():
        try:
            loaded = yaml.safe_load(spec_path.read_text()) or {}
        except (yaml.YAMLError, OSError, UnicodeDecodeError) as exc:
            return SpecProblem(str(spec_path), f"invalid YAML: {exc}")
        if not isinstance(loaded, dict):
            return SpecProblem(str(spec_path), f"must be a mapping, got {type(loaded).__name__}")
        data = loaded
        named = data.get("name")
        if named is not None and named != folder.name:
            return SpecProblem(
                str(spec_path), f"name {named!r} differs from its folder {folder.name!r}"
            )
    try:
        return CharacterSpec.model_validate({**data, "name": folder.name})
    except ValidationError as exc:
        where = spec_path if spec_path.is_file() else folder
        return SpecProblem(str(where), _validation_message(exc))


def read_specs(references_dir: Path) -> tuple[dict[str, CharacterSpec], list[SpecProblem]]:
    """Specs by name (sorted) and the folders skipped; a missing ``references_dir``: none."""
    specs: dict[str, CharacterSpec] = {}
    problems: list[SpecProblem] = []
    if not references_dir.is_dir():
        return specs, problems
    for folder in sorted(references_dir.iterdir()):
        if not folder.is_dir() or folder.name.startswith("."):
            continue
        result = _read_spec(folder)
        if isinstance(result, SpecProblem):
            problems.append(result)
        else:
            specs[result.name] = result
    return specs, problems


def load_specs(references_dir: Path) -> dict[str, CharacterSpec]:
    """Specs by character name; skipped folders are logged as warnings, never raised."""
    specs, problems = read_specs(Path(references_dir))
    for problem in problems:
        log.warning("character skipped: %s: %s", problem.path, problem.reason)
    return specs


# Reference photos --------------------------------------------------------------------------

REFERENCE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
REJECT_REASONS = ("unreadable", "no_face", "several_faces", "too_small")


@dataclass(frozen=True)
class RejectedReference:
    """A reference photo that gave no descriptor: its file, the reason code, in words."""

    character: str
    file: str
    reason: str  # one of REJECT_REASONS
    detail: str


@dataclass(frozen=True)
class References:
    """Every character's spec and the descriptors of its usable reference photos."""

    specs: dict[str, CharacterSpec]
    embeddings: dict[str, np.ndarray]  # name -> (photos, dim) float32; >= 1 photo each
    files: dict[str, tuple[str, ...]]  # name -> the photos behind ``embeddings``, in order
    rejected: tuple[RejectedReference, ...] = ()
    problems: tuple[SpecProblem, ...] = ()
    notes: tuple[str, ...] = ()
    n_cached: int = 0  # photos whose faces came from the cache

    @property
    def unusable(self) -> list[str]:
        """Characters without one usable reference photo: they can match nothing."""
        return [name for name in self.specs if name not in self.embeddings]


def reference_files(folder: Path) -> list[Path]:
    """The image files of a character folder (by suffix, any case), sorted by name."""
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in REFERENCE_SUFFIXES
    )


def read_reference(data: bytes) -> np.ndarray:
    """A reference photo as upright RGB (EXIF orientation applied: phone photos are
    stored sideways); ``OSError``/``ValueError`` when it is no readable image."""
    with Image.open(io.BytesIO(data)) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert("RGB")).copy()


class _FaceReader:
    """Faces of a reference photo: from the face cache by content sha256, else found."""

    def __init__(self, models: FaceModels, settings: CharacterSettings, cache: FaceCache | None):
        self.models, self.settings, self.cache = models, settings, cache
        self.n_cached = 0

    def __call__(self, path: Path) -> list[DetectedFace]:
        from style_pipeline.curation.face_embeddings import find_faces

        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        cached = self.cache.get(sha) if self.cache is not None else None
        if cached is not None:
            self.n_cached += 1
            return cached
        faces = find_faces(read_reference(data), self.models, self.settings)
        if self.cache is not None:
            self.cache.put(sha, faces)
        return faces


def load_references(
    references_dir: Path,
    models: FaceModels,
    settings: CharacterSettings,
    *,
    cache: FaceCache | None = None,
) -> References:
    """Specs (``read_specs``) and the descriptor of each character's reference photos.

    A photo is rejected, by name and never fatally: ``unreadable`` (no image),
    ``no_face``, ``too_small`` (faces, none ``min_face_px`` tall: nothing embedded) or
    ``several_faces``. A photo with several embedded faces keeps the one nearest the
    centroid of the character's single-face photos when it lies within
    ``match_threshold`` (a portrait with people behind); without single-face photos to
    tell, or with none near, it is ``several_faces``. ``cache``: the faces cache of the
    frames (same models, same settings), by the photo's content.
    """
    specs, problems = read_specs(Path(references_dir))
    if models.embedder_name is None:
        note = (
            f"face detector {models.detector_name} embeds no faces: "
            f"{len(specs)} character(s) cannot be matched"
        )
        return References(specs, {}, {}, (), tuple(problems), (note,) if specs else ())
    reader = _FaceReader(models, settings, cache)
    embeddings: dict[str, np.ndarray] = {}
    files: dict[str, tuple[str, ...]] = {}
    rejected: list[RejectedReference] = []
    for name in specs:
        chosen, lost = _character_references(name, Path(references_dir) / name, reader, settings)
        rejected += lost
        if chosen:
            files[name] = tuple(str(path) for path, _ in chosen)
            embeddings[name] = np.stack([vec for _, vec in chosen]).astype(np.float32)
    for item in rejected:
        log.warning("reference %s rejected (%s): %s", item.file, item.reason, item.detail)
    notes = tuple(
        f"character {name} has no usable reference photo"
        for name in specs
        if name not in embeddings
    )
    for note in notes:
        log.warning(note)
    return References(
        specs, embeddings, files, tuple(rejected), tuple(problems), notes, reader.n_cached
    )


def _character_references(
    name: str, folder: Path, find: Callable[[Path], list[DetectedFace]], settings: CharacterSettings
) -> tuple[list[tuple[Path, np.ndarray]], list[RejectedReference]]:
    """(photo, descriptor) of the usable photos, in file order, and the rejected ones."""
    single: dict[Path, np.ndarray] = {}
    several: dict[Path, list[np.ndarray]] = {}
    rejected: list[RejectedReference] = []
    for path in reference_files(folder):
        try:
            faces = find(path)
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            rejected.append(RejectedReference(name, str(path), "unreadable", str(exc)[:200]))
            continue
        embedded = [f.embedding for f in faces if f.embedding is not None]
        if not faces:
            rejected.append(RejectedReference(name, str(path), "no_face", "no face detected"))
        elif not embedded:
            largest = max(f.short_side for f in faces)
            rejected.append(
                RejectedReference(
                    name,
                    str(path),
                    "too_small",
                    f"largest face {largest} px < characters.min_face_px {settings.min_face_px}",
                )  # fmt: skip
            )
        elif len(embedded) == 1:
            single[path] = embedded[0]
        else:
            several[path] = embedded
    centre = np.mean(list(single.values()), axis=0) if single else None
    chosen = dict(single)
    for path, vectors in several.items():
        if centre is None:
            detail = f"{len(vectors)} faces and no single-face photo of {name} to choose by"
            rejected.append(RejectedReference(name, str(path), "several_faces", detail))
            continue
        distances = [float(np.linalg.norm(v - centre)) for v in vectors]
        best = int(np.argmin(distances))
        if distances[best] <= settings.match_threshold:
            chosen[path] = vectors[best]
        else:
            detail = f"{len(vectors)} faces, the nearest {distances[best]:.2f} from {name}'s others"
            rejected.append(RejectedReference(name, str(path), "several_faces", detail))
    return sorted(chosen.items()), sorted(rejected, key=lambda r: r.file)
