"""Characters from ``data/characters/<name>/``: their specs (``character.yaml``) and the face
embeddings of their reference photos.

Each sub-folder is a character; its name must match ``CharacterSpec``'s pattern
(``^[a-z0-9][a-z0-9_-]*$``, not ``unknown_*``). ``character.yaml`` is optional (every field
has a default). One bad character never fails the partition: a bad folder name or an invalid
``character.yaml`` skips that character, and the problem is returned by name (``read_specs``)
and logged (``load_specs``). Hidden folders (``.name``) and loose files are ignored.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from style_pipeline.contracts.characters import CharacterSpec

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
