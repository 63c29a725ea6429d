"""Characters in captions: the matched characters a frame shows and their trigger words.

The ``characters`` table has one row per face (``CharacterRecord``); a frame names the
characters of its matched faces (``matched`` and a label), largest face first
(``face_index`` 0), each once. Unknown groups (``unknown_<n>``) and unlabelled faces name
no one. A character's trigger word comes from its ``character.yaml`` (``CharacterSpec``;
its name when the spec sets none, or when the character has no folder any more).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from style_pipeline.contracts.characters import CharacterSpec


def named_characters(rows: Iterable[Mapping]) -> dict[str, list[str]]:
    """``frame_id -> [character name, ...]`` of matched faces, largest face first, no repeats."""
    faces: dict[str, list[tuple[int, str]]] = {}
    for row in rows:
        if row["matched"] and row["label"]:
            faces.setdefault(row["frame_id"], []).append((int(row["face_index"]), row["label"]))
    out: dict[str, list[str]] = {}
    for frame_id, found in faces.items():
        names: list[str] = []
        for _index, name in sorted(found):
            if name not in names:
                names.append(name)
        out[frame_id] = names
    return out


def trigger_words(names: Sequence[str], specs: Mapping[str, CharacterSpec]) -> list[str]:
    """Trigger word of each character in ``names`` (order kept; one that has no spec: its name)."""
    return [specs[name].trigger if name in specs else name for name in names]


def allowed_phrases(specs: Mapping[str, CharacterSpec]) -> list[str]:
    """Every character's trigger word and aliases: words the ontology check keeps as they are."""
    return sorted({p for spec in specs.values() for p in (spec.trigger, *spec.aliases)})
