"""Per-character share limits of the curated set, around any greedy selection objective.

A frame counts once for every character matched in it. ``max_share`` caps a character's
kept frames at ``floor(max_share * target)`` (``target``: the frames the selection fills,
lock-ins included); ``min_share`` asks for ``ceil(min_share * target)`` of them, picked
first among the frames of characters still short of their minimum, as far as those frames
allow. When the selection ends with fewer frames than ``target`` (the pool ran out, or
gains fell below ``min_gain``), a character over ``max_share`` of the frames actually kept
loses its latest picks until it fits. Lock-ins are never dropped: a limit they break is
reported, never enforced.

The greedies know single-group caps only; a frame may show several characters. So each
greedy runs unchanged, and its picks are walked in order: up to the first pick that breaks
a limit they are exactly the picks a limit-aware greedy makes; from there it runs again
with the accepted picks as its initial selection and without the frames it may no longer
take. Every re-run follows a character becoming full or meeting its minimum, so there are
at most two per limited character.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field

from style_pipeline.contracts.characters import CharacterSpec
from style_pipeline.curation.submodular import GreedyResult

SHARE_CODE = "character_share"
_EPS = 1e-9
# (initial columns, candidate columns) -> the greedy's result and each pick's gain parts
Greedy = Callable[[list[int], list[int]], tuple[GreedyResult, list[dict[str, float]]]]


def most_frames(max_share: float, kept: int) -> int:
    """The most frames of a character ``max_share`` allows in a set of ``kept`` frames."""
    return math.floor(max_share * kept + _EPS)


def least_frames(min_share: float, kept: int) -> int:
    """The frames of a character ``min_share`` asks for in a set of ``kept`` frames."""
    return max(math.ceil(min_share * kept - _EPS), 0)


def wanted_frames(spec: CharacterSpec, kept: int) -> int:
    """min_share's frames, never more than max_share allows (equal shares round down)."""
    return min(least_frames(spec.min_share, kept), most_frames(spec.max_share, kept))


def limiting(specs: Mapping[str, CharacterSpec]) -> dict[str, CharacterSpec]:
    """The specs that limit anything (a min_share above 0 or a max_share below 1)."""
    return {n: s for n, s in sorted(specs.items()) if s.min_share > 0 or s.max_share < 1}


@dataclass
class SharedPicks:
    """Picks (column indices) in acceptance order under the share limits, and why not others."""

    picks: list[int]
    gains: list[float]
    parts: list[dict[str, float]]
    stop: str
    evaluations: int
    capped: set[int]  # refused by the greedy's own group caps (the outlier budget)
    refused: dict[int, tuple[str, str]]  # column -> (character at its cap, reason)
    runs: int
    notes: list[str] = field(default_factory=list)
    for_minimum: dict[int, list[str]] = field(default_factory=dict)  # pick -> minimums served


class _Counts:
    def __init__(self, members: Sequence[Collection[str]], limits: Mapping[str, CharacterSpec]):
        self.members = members
        self.limits = limits
        self.kept = dict.fromkeys(limits, 0)

    def add(self, j: int, sign: int = 1) -> None:
        for name in self.members[j]:
            if name in self.kept:
                self.kept[name] += sign

    def full(self, j: int, allowed: Mapping[str, int]) -> str | None:
        """A character of ``j`` already at its cap (None: ``j`` may be added)."""
        return next((c for c in sorted(self.members[j]) if c in allowed
                     and self.kept[c] >= allowed[c]), None)  # fmt: skip

    def short(self, wanted: Mapping[str, int]) -> set[str]:
        return {c for c, n in wanted.items() if self.kept[c] < n}


def shared_greedy(
    greedy: Greedy,
    initial: Sequence[int],
    candidates: Sequence[int],
    slots: int,
    members: Sequence[Collection[str]],
    limits: Mapping[str, CharacterSpec],
    target: int,
) -> SharedPicks:
    """Up to ``slots`` picks among ``candidates`` after ``initial`` under ``limits``.

    ``members[j]``: the characters of column ``j``; ``target``: the set size the shares
    are of while picking (the budget, lock-ins included).
    """
    counts = _Counts(members, limits)
    for j in initial:
        counts.add(j)
    allowed = {c: most_frames(s.max_share, target) for c, s in limits.items() if s.max_share < 1}
    wanted = {c: wanted_frames(s, target) for c, s in limits.items() if s.min_share > 0}
    out = SharedPicks([], [], [], "exhausted", 0, set(), {}, 0)
    for c in sorted(allowed):
        if counts.kept[c] > allowed[c]:
            out.notes.append(
                f"{c}: {counts.kept[c]} lock-ins exceed max_share "
                f"{limits[c].max_share} ({allowed[c]} of {target} frames)"
            )
    taken: set[int] = set()

    def open_candidates(need: set[str] | None) -> list[int]:
        ready = []
        for j in candidates:
            if j in taken or j in out.refused:
                continue
            who = counts.full(j, allowed)
            if who is not None:
                out.refused[j] = (who, _cap_reason(who, limits[who], allowed[who], target))
            elif need is None or set(members[j]) & need:
                ready.append(j)
        return ready

    def walk(need: set[str] | None) -> bool:
        """One greedy run; False when it ended on its own (no limit cut it short)."""
        pool = open_candidates(need)
        if len(out.picks) >= slots:
            return False
        if not pool:
            out.stop = "exhausted"
            return False
        result, parts = greedy([*initial, *out.picks], pool)
        out.runs += 1
        out.evaluations += result.evaluations
        out.capped |= result.capped
        out.stop = result.stop
        for k, j in enumerate(result.picks):
            if len(out.picks) >= slots:
                return False
            if counts.full(j, allowed) is not None:
                return True  # a character of j filled up during this walk: re-run
            if need is not None and not set(members[j]) & counts.short(wanted):
                return True  # the minimums it served are met: re-run on what is left short
            out.picks.append(j)
            if need is not None:
                out.for_minimum[j] = sorted(set(members[j]) & counts.short(wanted))
            out.gains.append(result.gains[k])
            out.parts.append(parts[k] if k < len(parts) else {})
            taken.add(j)
            counts.add(j)
        return False

    while wanted and counts.short(wanted) and walk(counts.short(wanted)):
        pass  # minimums first: only frames of characters still short of theirs
    while walk(None):
        pass
    open_candidates(None)  # frames of characters that ended full are refused too
    if len(out.picks) >= slots:
        out.stop = "budget"
    return out


def trim_to_kept(
    picks: list[int],
    initial: Sequence[int],
    members: Sequence[Collection[str]],
    limits: Mapping[str, CharacterSpec],
) -> dict[int, tuple[str, str]]:
    """Drop the latest picks of characters over ``max_share`` of the frames kept; who, why.

    Needed when fewer frames are kept than the target the caps were computed for. Removes
    from ``picks`` in place; lock-ins (``initial``) are never removed.
    """
    counts = _Counts(members, limits)
    for j in [*initial, *picks]:
        counts.add(j)
    dropped: dict[int, tuple[str, str]] = {}
    while True:
        kept = len(initial) + len(picks)
        over = [c for c, s in limits.items() if counts.kept[c] > most_frames(s.max_share, kept)]
        victims = [j for j in reversed(picks) if set(members[j]) & set(over)]
        if not victims:
            return dropped
        j = victims[0]
        name = next(c for c in sorted(members[j]) if c in over)
        dropped[j] = (name, (
            f"dropped: character share: {name} would be {counts.kept[name]} of {kept} kept "
            f"frames, over max_share {limits[name].max_share} (fewer frames than the budget)"
        ))  # fmt: skip
        picks.remove(j)
        counts.add(j, -1)


def _cap_reason(name: str, spec: CharacterSpec, allowed: int, target: int) -> str:
    return (f"dropped: character share: {name} at its cap, {allowed} of {target} frames "
            f"(max_share {spec.max_share})")  # fmt: skip
