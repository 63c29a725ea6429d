"""Elo ratings and the pair schedule of a day's pairwise judging (pure functions).

Within a cluster the top ``contenders_per_cluster`` frames (by ``total_prelim``, among
frames that passed the theme's constraints) meet in a round robin (circle method: every
contender plays once per round before anyone plays again), cut at
``max_pairs_per_cluster``. Clusters share the day budget ``max_pairs_per_day`` round by
round (every cluster's first pair before any cluster's second, most promising cluster
first), so a short budget judges every moment shallowly rather than a few deeply. The
opener finalists' round robin gets what the clusters left.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")
Pair = tuple[str, str]


def expected_score(rating_a: float, rating_b: float) -> float:
    """Probability that A beats B under Elo (logistic, 400-point scale)."""
    return 1.0 / (1.0 + 10.0 ** ((rating_b - rating_a) / 400.0))


def elo_update(rating_a: float, rating_b: float, a_won: bool, k: float) -> tuple[float, float]:
    """Both ratings after one game; the sum of the two ratings is unchanged."""
    delta = k * ((1.0 if a_won else 0.0) - expected_score(rating_a, rating_b))
    return rating_a + delta, rating_b - delta


def top_by(values: Mapping[str, float], n: int) -> list[str]:
    """The ``n`` ids with the highest value (ties: smaller id first)."""
    return sorted(values, key=lambda fid: (-values[fid], fid))[: max(n, 0)]


def round_robin(ids: Sequence[str], max_pairs: int | None = None) -> list[Pair]:
    """Circle-method round robin of ``ids`` in round order, cut at ``max_pairs``."""
    players: list[str | None] = list(ids)
    if len(players) < 2:
        return []
    if len(players) % 2:
        players.append(None)  # a bye
    n, pairs = len(players), []
    for _ in range(n - 1):
        for i in range(n // 2):
            a, b = players[i], players[n - 1 - i]
            if a is not None and b is not None:
                pairs.append((a, b))
        players = [players[0], players[-1], *players[1:-1]]  # rotate all but the first
    return pairs if max_pairs is None else pairs[: max(max_pairs, 0)]


def interleave(schedules: Sequence[Sequence[T]], budget: int) -> list[T]:
    """The i-th item of every schedule before any (i+1)-th, at most ``budget`` items."""
    out: list[T] = []
    depth = max((len(s) for s in schedules), default=0)
    for i in range(depth):
        for schedule in schedules:
            if i < len(schedule):
                if len(out) >= budget:
                    return out
                out.append(schedule[i])
    return out


@dataclass
class Ratings:
    """Elo ratings with win/loss counts, updated game by game."""

    start: float
    k: float
    elo: dict[str, float] = field(default_factory=dict)
    wins: dict[str, int] = field(default_factory=dict)
    losses: dict[str, int] = field(default_factory=dict)

    def add(self, ids: Iterable[str]) -> None:
        for fid in ids:
            self.elo.setdefault(fid, self.start)
            self.wins.setdefault(fid, 0)
            self.losses.setdefault(fid, 0)

    def record(self, a: str, b: str, winner: str) -> None:
        if winner not in (a, b):
            raise ValueError(f"winner {winner!r} is neither {a!r} nor {b!r}")
        self.add((a, b))
        self.elo[a], self.elo[b] = elo_update(self.elo[a], self.elo[b], winner == a, self.k)
        loser = b if winner == a else a
        self.wins[winner] += 1
        self.losses[loser] += 1

    def standings(self, tie_break: Mapping[str, float]) -> list[str]:
        """Ids by Elo, then by ``tie_break`` (e.g. total_prelim), then by id."""
        return sorted(self.elo, key=lambda f: (-self.elo[f], -tie_break.get(f, 0.0), f))
