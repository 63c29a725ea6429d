"""Concept folders of a training set: kohya's ``<repeats>_<name>`` and balancing repeats.

``flat`` puts every image in ``<repeats>_<concept>`` (``1_style``). ``per_character`` gives
each character the captions name a folder of its own, ``<repeats>_<character>``; an image
showing several characters goes to the first one named (the largest face), an image naming
no one to ``<repeats>_<concept>``. A character's repeats make every character contribute
about as many examples per epoch as the most frequent one:
``repeats x clamp(round(most / images), 1, max_repeats)``; the concept's folder keeps
``repeats``. kohya's own pattern is ``<repeats>_<identifier> <class>``, whose name part
only becomes the caption of an image without a ``.txt``: every image here has its caption
file (trigger words first), so the name part is just the character's name (folder-safe).
``concept_repeats`` (name -> repeats) sets a concept's or a character's repeats outright,
over both the concept's ``repeats`` and the balancing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from style_pipeline.contracts.training import DatasetBuildConfig

_FOLDER_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


@dataclass(frozen=True)
class Concept:
    """One concept folder: its name, repeats and whether it is a character's."""

    name: str
    repeats: int
    character: bool

    @property
    def folder(self) -> str:
        return f"{self.repeats}_{self.name}"


def balanced_repeats(count: int, most: int, base: int, cap: int) -> int:
    """``base x clamp(round(most / count), 1, cap)`` (halves round up)."""
    factor = math.floor(most / count + 0.5)
    return base * min(cap, max(1, factor))


def primary_character(characters: Sequence[str]) -> str | None:
    """The character an image is filed under: the first named (largest face), or None."""
    return characters[0] if characters else None


def plan_concepts(
    characters: Iterable[tuple[str, Sequence[str]]], config: DatasetBuildConfig
) -> dict[str, Concept]:
    """``frame_id -> Concept`` for ``(frame_id, characters named)`` pairs.

    Raises ``ValueError`` for a character name that is not folder-safe or that is the
    concept's own name (their folders would read as one concept).
    """
    pairs = list(characters)
    chosen = config.concept_repeats
    if bad := sorted(name for name, n in chosen.items() if n < 1):
        raise ValueError(f"concept_repeats must be at least 1: {bad}")
    style = Concept(config.concept, chosen.get(config.concept, config.repeats), character=False)
    if config.layout == "flat":
        return {frame_id: style for frame_id, _ in pairs}
    primary = {frame_id: primary_character(names) for frame_id, names in pairs}
    counts = Counter(name for name in primary.values() if name is not None)
    for name in counts:
        if not _FOLDER_SAFE.match(name):
            raise ValueError(f"character {name!r} cannot name a folder")
        if name.lower() == config.concept.lower():
            raise ValueError(f"character {name!r} has the concept's name {config.concept!r}")
    most = max(counts.values(), default=0)
    concepts = {
        name: Concept(
            name,
            chosen.get(name) or balanced_repeats(n, most, config.repeats, config.max_repeats),
            character=True,
        )
        for name, n in counts.items()
    }
    return {frame_id: concepts[n] if n else style for frame_id, n in primary.items()}
