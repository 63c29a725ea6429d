"""Pairwise judges: which of two frames is better for the theme, and why.

Every judge has a ``name`` (what the tables record), a ``model`` (what the judgment cache
is keyed by) and ``judge(a, b, stage, weights) -> Verdict``. Two exist:

* :class:`HeuristicJudge` (the default, free): the higher ``merit`` wins (``total_prelim``
  within a cluster, the opener role's affinity among opener finalists); an exact tie is
  broken by a seeded hash of the pair, the same whichever way round it is asked. The
  rationale names the scores that decided it.
* :class:`EndpointJudge` (``curation/endpoint_judge.py``): an OpenAI-compatible vision
  chat endpoint that falls back to the heuristic, reason recorded, when it cannot answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Literal, Protocol

from PIL import Image

from style_pipeline.contracts.themes import SCORES, Rubric

Stage = Literal["cluster", "opener"]
TIE = 1e-9


@dataclass(frozen=True)
class Candidate:
    """One frame in a contest: its scores, what the heuristic compares, and its image."""

    frame_id: str
    content_hash: str  # sha256 of the frame's bytes: the cache key's half
    scores: Mapping[str, float]  # the five SCORES in [0, 1]
    merit: float  # total_prelim (cluster) or the opener role's affinity (opener)
    image: Callable[[], Image.Image] | None = None  # loaded only by judges that look


@dataclass(frozen=True)
class Verdict:
    """The winner's frame id, the judge's words, and what asking cost."""

    winner: str
    rationale: str
    judge: str  # heuristic, endpoint:<model>, or fallback:<reason code>
    fallback_reason: str | None = None  # "<code>: <detail>" when the asked judge failed
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


class Judge(Protocol):
    """Decides one pair; never raises for a judging failure (it falls back instead)."""

    name: str
    model: str
    cacheable: bool  # verdicts worth keeping (paid for, and not a function of the scores)

    def judge(self, a: Candidate, b: Candidate, stage: Stage, weights: Rubric) -> Verdict: ...


def affinity(scores: Mapping[str, float], weights: Rubric) -> float | None:
    """Weighted mean of the scores under ``weights`` (None when every weight is 0)."""
    total = weights.total()
    if total <= 0:
        return None
    return sum(getattr(weights, s) * scores.get(s, 0.0) for s in SCORES) / total


def deciding_scores(winner: Candidate, loser: Candidate, weights: Rubric, top: int = 2) -> str:
    """The scores that most favoured the winner, e.g. ``q_tech +0.31, composition +0.12``."""
    total = weights.total() or 1.0
    gaps = {
        s: getattr(weights, s) * (winner.scores.get(s, 0.0) - loser.scores.get(s, 0.0)) / total
        for s in SCORES
    }
    ahead = sorted((g, s) for s, g in gaps.items() if g > TIE)[::-1][:top]
    return ", ".join(f"{s} +{g:.2f}" for g, s in ahead) or "no single score"


class HeuristicJudge:
    """LLM-free: the higher merit wins; exact ties go to a seeded, order-free coin."""

    name = "heuristic"
    model = "heuristic"
    cacheable = False  # free, and a cached verdict would go stale when the scorecard changes

    def __init__(self, seed: int = 0):
        self.seed = seed

    def judge(self, a: Candidate, b: Candidate, stage: Stage, weights: Rubric) -> Verdict:
        merit = "total_prelim" if stage == "cluster" else "opener affinity"
        if abs(a.merit - b.merit) <= TIE:
            first, second = sorted((a, b), key=lambda c: c.frame_id)
            coin = hashlib.sha256(f"{self.seed}:{first.frame_id}:{second.frame_id}".encode())
            winner = (first, second)[coin.digest()[0] % 2]
            why = f"tie on {merit} {a.merit:.3f}; seeded tie-break (seed {self.seed})"
            return Verdict(winner.frame_id, why, self.name)
        winner, loser = (a, b) if a.merit > b.merit else (b, a)
        why = (
            f"{merit} {winner.merit:.3f} vs {loser.merit:.3f}; "
            f"decided by {deciding_scores(winner, loser, weights)}"
        )
        return Verdict(winner.frame_id, why, self.name)


def fallback(
    heuristic: HeuristicJudge,
    a: Candidate,
    b: Candidate,
    stage: Stage,
    weights: Rubric,
    code: str,
    detail: str,
) -> Verdict:
    """The heuristic's verdict, labelled with why the asked judge could not decide."""
    verdict = heuristic.judge(a, b, stage, weights)
    reason = f"{code}: {detail}" if detail else code
    return replace(verdict, judge=f"fallback:{code}", fallback_reason=reason)
