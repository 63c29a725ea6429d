"""The theme's marginal-gain greedy: diversity + merit + role fit + axis coverage per pick.

The gain of adding frame ``j`` to the selection ``S`` is

    coverage_weight * FL(j | S) / n_ground     facility location (embedding diversity)
  + quality_weight  * merit[j] / slots         total_prelim, hero Elo
  + role_weight     * max_{r open} p[j, r] / slots   fit to a role whose quota is not full
  + axis_weight     * sum_a e_a [tag_a(j) not yet picked] / sum_a e_a |values_a|

Every term is non-increasing as ``S`` grows (facility location and set coverage are
submodular, merit is modular, and roles only close), so Minoux' lazy evaluation with
stale upper bounds returns the same picks as the plain greedy.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from style_pipeline.curation.submodular import GreedyResult

PARTS = ("diversity", "merit", "role", "coverage")


@dataclass(frozen=True)
class ThemeTerms:
    """Per-frame inputs of the role and coverage terms (rows: the day's frames)."""

    role_probs: np.ndarray  # (n, roles), rows sum to 1
    quotas: np.ndarray  # (roles,) frames wanted per role
    tag_ids: np.ndarray  # (n, axes) value index per axis, -1 when unknown
    axis_weights: np.ndarray  # (axes,) emphasis / sum_a emphasis_a * |values_a|
    role_weight: float = 1.0
    axis_weight: float = 1.0

    def rows(self, idx: np.ndarray) -> ThemeTerms:
        return ThemeTerms(
            self.role_probs[idx],
            self.quotas,
            self.tag_ids[idx],
            self.axis_weights,
            self.role_weight,
            self.axis_weight,
        )


@dataclass
class _State:
    cur: np.ndarray  # best similarity of each ground row to the selection
    filled: np.ndarray  # frames per role so far
    covered: list[set[int]]  # values picked per axis


def _parts(w, j, st: _State, terms: ThemeTerms, scale, bonus, slots) -> dict[str, float]:
    start, end = w.indptr[j], w.indptr[j + 1]
    rows = w.indices[start:end]
    fl = scale * float(np.maximum(w.data[start:end] - st.cur[rows], 0.0).sum())
    open_ = st.filled < terms.quotas
    role = float(terms.role_probs[j][open_].max()) if open_.any() else 0.0
    new = sum(
        float(terms.axis_weights[a])
        for a, v in enumerate(terms.tag_ids[j])
        if v >= 0 and int(v) not in st.covered[a]
    )
    return {
        "diversity": fl,
        "merit": float(bonus[j]),
        "role": terms.role_weight * role / slots,
        "coverage": terms.axis_weight * new,
    }


def _absorb(w, j, st: _State, terms: ThemeTerms) -> None:
    start, end = w.indptr[j], w.indptr[j + 1]
    rows = w.indices[start:end]
    st.cur[rows] = np.maximum(st.cur[rows], w.data[start:end])
    open_ = np.flatnonzero(st.filled < terms.quotas)
    if len(open_):
        st.filled[open_[np.argmax(terms.role_probs[j][open_])]] += 1
    for a, v in enumerate(terms.tag_ids[j]):
        if v >= 0:
            st.covered[a].add(int(v))


def theme_lazy_greedy(
    w: sp.spmatrix,
    terms: ThemeTerms,
    candidates: Sequence[int],
    budget: int,
    *,
    bonus: np.ndarray,
    coverage_weight: float = 1.0,
    initial: Sequence[int] = (),
    groups: np.ndarray | None = None,
    caps: dict[int, int] | None = None,
    min_gain: float = 0.0,
) -> tuple[GreedyResult, list[dict[str, float]]]:
    """Lazy greedy of the gain above over ``w``'s columns; the picks and each pick's parts.

    ``terms`` rows and ``bonus`` are indexed like ``w``'s columns; ``initial`` columns
    (lock-ins) are in the selection from the start and fill roles first.
    """
    w = sp.csc_matrix(w, dtype=np.float64)
    scale = coverage_weight / max(w.shape[0], 1)
    slots = max(budget, 1)
    st = _State(
        np.zeros(w.shape[0]), np.zeros(len(terms.quotas)), [set() for _ in terms.axis_weights]
    )
    for j in initial:
        _absorb(w, j, st, terms)
    heap = [
        (-sum(_parts(w, j, st, terms, scale, bonus, slots).values()), int(j)) for j in candidates
    ]
    heapq.heapify(heap)
    taken = dict.fromkeys((caps or {}).keys(), 0)
    result = GreedyResult([], [], "exhausted", len(heap), set())
    parts: list[dict[str, float]] = []
    while heap:
        if len(result.picks) >= budget:
            result.stop = "budget"
            break
        _, j = heapq.heappop(heap)
        group = int(groups[j]) if groups is not None else None
        if caps and group in caps and taken[group] >= caps[group]:
            result.capped.add(j)
            continue
        now = _parts(w, j, st, terms, scale, bonus, slots)
        gain = sum(now.values())
        result.evaluations += 1
        if heap and gain < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-gain, j))
            continue
        if gain < min_gain:
            result.stop = "min_gain"
            break
        _absorb(w, j, st, terms)
        result.picks.append(j)
        result.gains.append(gain)
        parts.append(now)
        if caps and group in caps:
            taken[group] += 1
    return result, parts


def axis_terms(
    tags: Sequence[Mapping[str, str]],
    axes: Mapping[str, Sequence[str]],
    emphasis: Mapping[str, float],
) -> tuple[np.ndarray, np.ndarray]:
    """(n, axes) value indices (-1: unknown or not a listed value) and normalised weights."""
    names = list(axes)
    ids = np.full((len(tags), len(names)), -1, dtype=np.int64)
    for i, frame in enumerate(tags):
        for a, axis in enumerate(names):
            values = list(axes[axis])
            if frame.get(axis) in values:
                ids[i, a] = values.index(frame[axis])
    raw = np.array([emphasis.get(a, 1.0) for a in names], dtype=np.float64)
    total = float(sum(raw[a] * len(axes[n]) for a, n in enumerate(names)))
    return ids, (raw / total if total > 0 else raw)
