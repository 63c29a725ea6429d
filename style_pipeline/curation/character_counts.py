"""Counts of characters and unknown face groups in a day's curated set, and the share
limits (``character.yaml``'s min_share / max_share) the kept frames miss, in words."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from style_pipeline.contracts.characters import UNKNOWN_PREFIX, CharacterSpec
from style_pipeline.curation.character_shares import most_frames, wanted_frames


@dataclass(frozen=True)
class CharacterCount:
    """A character's (or unknown face group's) frames that day and in the curated set."""

    frames: int  # frames of the day showing it
    kept: int
    share: float  # kept / frames kept that day
    min_share: float = 0.0
    max_share: float = 1.0
    wanted: int = 0  # min_share of the frames kept
    allowed: int | None = None  # max_share of the frames kept (None: no cap)
    dropped_for_share: int = 0

    @property
    def met(self) -> bool:
        return self.kept >= self.wanted and (self.allowed is None or self.kept <= self.allowed)


def character_counts(
    members: Sequence[Collection[str]],
    keep: Sequence[bool],
    specs: Mapping[str, CharacterSpec],
    dropped_for_share: Mapping[str, int] | None = None,
) -> tuple[dict[str, CharacterCount], dict[str, CharacterCount]]:
    """(characters, unknown groups) -> counts; every spec is listed, shown that day or not."""
    total = sum(bool(k) for k in keep)
    frames: dict[str, int] = dict.fromkeys(specs, 0)
    kept: dict[str, int] = dict.fromkeys(specs, 0)
    for labels, k in zip(members, keep, strict=True):
        for name in set(labels):
            frames[name] = frames.get(name, 0) + 1
            kept[name] = kept.get(name, 0) + bool(k)
    named: dict[str, CharacterCount] = {}
    unknown: dict[str, CharacterCount] = {}
    for name in sorted(frames, key=_label_order):
        share = kept[name] / total if total else 0.0
        spec = specs.get(name)
        if name.startswith(UNKNOWN_PREFIX):
            unknown[name] = CharacterCount(frames[name], kept[name], share)
        elif spec is None:
            named[name] = CharacterCount(frames[name], kept[name], share)
        else:
            named[name] = CharacterCount(
                frames[name], kept[name], share, spec.min_share, spec.max_share,
                wanted=wanted_frames(spec, total),
                allowed=most_frames(spec.max_share, total) if spec.max_share < 1 else None,
                dropped_for_share=(dropped_for_share or {}).get(name, 0),
            )  # fmt: skip
    return named, unknown


def _label_order(label: str) -> tuple[int, str]:
    """unknown_2 before unknown_10; names alphabetically."""
    if label.startswith(UNKNOWN_PREFIX) and label[len(UNKNOWN_PREFIX) :].isdigit():
        return int(label[len(UNKNOWN_PREFIX) :]), ""
    return -1, label


def unmet_notes(
    counts: Mapping[str, CharacterCount],
    available: Mapping[str, int],
    blocked_by: Mapping[str, Collection[str]] | None = None,
) -> list[str]:
    """A line per character whose share limit the kept set misses. ``available``: eligible
    frames showing it (lock-ins included); ``blocked_by``: the characters whose cap refused
    frames showing it."""
    notes = []
    for name, c in counts.items():
        if c.kept < c.wanted:
            have = available.get(name, 0)
            line = (
                f"{name}: {c.kept} kept frames, min_share {c.min_share} wants {c.wanted}: "
                f"{'only ' + str(have) if have <= c.wanted and have else have or 'no'} "
                f"eligible frames show {name} today"
            )
            others = sorted(set((blocked_by or {}).get(name, ())) - {name})
            if others:
                line += f"; frames with {', '.join(others)} are at their max_share"
            notes.append(line)
        if c.allowed is not None and c.kept > c.allowed:
            notes.append(f"{name}: {c.kept} kept frames, over max_share {c.max_share} "
                         f"({c.allowed}): lock-ins")  # fmt: skip
    return notes


def frame_members(characters: Sequence[Collection[str]] | None, n: int) -> list[frozenset[str]]:
    """The characters of each of ``n`` frames (none for all when ``characters`` is None)."""
    if characters is None:
        return [frozenset()] * n
    if len(characters) != n:
        raise ValueError(f"characters has {len(characters)} rows for {n} frames")
    return [frozenset(c) for c in characters]


def share_report(
    keep: Sequence[bool],
    members: Sequence[Collection[str]],
    specs: Mapping[str, CharacterSpec],
    refused: Mapping[int, tuple[str, str]],
    eligible: Sequence[int],
) -> tuple[dict[str, CharacterCount], dict[str, CharacterCount], list[str]]:
    """Counts per character and unknown group, and the share limits the kept set misses.

    ``refused``: frame -> (character at its cap, reason); ``eligible``: the frames the
    selection could keep (lock-ins and candidates).
    """
    dropped: dict[str, int] = {}
    for name, _ in refused.values():
        dropped[name] = dropped.get(name, 0) + 1
    named, groups = character_counts(members, keep, specs, dropped)
    available: dict[str, int] = {}
    for i in eligible:
        for name in members[i]:
            available[name] = available.get(name, 0) + 1
    blocked_by: dict[str, set[str]] = {}
    for i, (name, _) in refused.items():
        for shown in members[i]:
            blocked_by.setdefault(shown, set()).add(name)
    return named, groups, unmet_notes(named, available, blocked_by)
