"""Diversity objectives: facility location (lazy greedy) and MMR, over sparse coverage.

Facility location: ``F(S) = sum_i max_{j in S} W[i, j]`` with ``W >= 0`` (ground rows,
candidate columns) is monotone submodular, so the lazy greedy (Minoux' priority queue
of stale upper bounds) gives the same picks as the plain greedy with far fewer gain
evaluations. A non-negative per-column bonus (quality) keeps it monotone submodular.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from style_pipeline.curation.knn import KnnGraph


@dataclass
class GreedyResult:
    """Picks in order with their marginal gains, and why the loop stopped."""

    picks: list[int]
    gains: list[float]
    stop: str  # "budget" | "exhausted" | "min_gain"
    evaluations: int
    capped: set[int]  # candidates refused because their group was full


def coverage_from_knn(knn: KnnGraph) -> sp.csr_matrix:
    """Symmetric (n, n) similarity with self 1, from a k-NN graph (negative sims -> 0)."""
    n, k = knn.indices.shape
    rows = np.repeat(np.arange(n), k)
    cols = knn.indices.ravel()
    vals = np.maximum(knn.sims.ravel(), 0.0)
    keep = (cols >= 0) & (vals > 0)
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    r = np.concatenate([rows, cols, np.arange(n)])
    c = np.concatenate([cols, rows, np.arange(n)])
    v = np.concatenate([vals, vals, np.ones(n)]).astype(np.float32)
    keys, first = np.unique(r.astype(np.int64) * n + c, return_index=True)
    return sp.csr_matrix((v[first], (keys // n, keys % n)), shape=(n, n))


def coverage_dense(x: np.ndarray, ground: np.ndarray, cols: np.ndarray) -> sp.csc_matrix:
    """``max(0, cos)`` between ground rows and candidate columns, as a CSC matrix."""
    sims = np.maximum(x[ground] @ x[cols].T, 0.0).astype(np.float32)
    return sp.csc_matrix(sims)


def facility_location_value(w: sp.spmatrix, selected: Sequence[int]) -> float:
    """``sum_i max_{j in selected} w[i, j]`` (0 for the empty set)."""
    if len(selected) == 0:
        return 0.0
    block = sp.csc_matrix(w)[:, list(selected)]
    return float(np.asarray(block.max(axis=1).todense()).sum())


def _column_gains(w: sp.csc_matrix, cur: np.ndarray) -> np.ndarray:
    diff = np.maximum(w.data - cur[w.indices], 0.0)
    owner = np.repeat(np.arange(w.shape[1]), np.diff(w.indptr))
    return np.bincount(owner, weights=diff, minlength=w.shape[1])


def lazy_greedy(
    w: sp.spmatrix,
    candidates: Sequence[int],
    budget: int,
    *,
    bonus: np.ndarray | None = None,
    coverage_weight: float = 1.0,
    initial: Sequence[int] = (),
    groups: np.ndarray | None = None,
    caps: dict[int, int] | None = None,
    min_gain: float = 0.0,
) -> GreedyResult:
    """Greedy max of ``coverage_weight * F(S) / n_rows + sum(bonus[S])`` under ``budget``.

    ``initial`` columns are in S from the start (not counted in ``budget``); ``groups``
    and ``caps`` bound how many picks each group may take. Ties break on lower index.
    """
    w = sp.csc_matrix(w, dtype=np.float64)
    n_rows = max(w.shape[0], 1)
    scale = coverage_weight / n_rows
    bonus = np.zeros(w.shape[1]) if bonus is None else np.asarray(bonus, dtype=np.float64)
    cur = np.zeros(w.shape[0])
    for j in initial:
        _absorb(w, j, cur)
    gains = scale * _column_gains(w, cur) + bonus
    heap = [(-gains[j], int(j)) for j in candidates]
    heapq.heapify(heap)
    taken = dict.fromkeys((caps or {}).keys(), 0)
    picks: list[int] = []
    picked_gains: list[float] = []
    capped: set[int] = set()
    evaluations, stop = len(heap), "exhausted"
    while heap:
        if len(picks) >= budget:
            stop = "budget"
            break
        _, j = heapq.heappop(heap)
        group = int(groups[j]) if groups is not None else None
        if caps and group in caps and taken[group] >= caps[group]:
            capped.add(j)
            continue
        start, end = w.indptr[j], w.indptr[j + 1]
        rows = w.indices[start:end]
        gain = scale * float(np.maximum(w.data[start:end] - cur[rows], 0.0).sum()) + bonus[j]
        evaluations += 1
        if heap and gain < -heap[0][0] - 1e-12:
            heapq.heappush(heap, (-gain, j))
            continue
        if gain < min_gain:
            stop = "min_gain"
            heapq.heappush(heap, (-gain, j))
            break
        _absorb(w, j, cur)
        picks.append(j)
        picked_gains.append(gain)
        if caps and group in caps:
            taken[group] += 1
    return GreedyResult(picks, picked_gains, stop, evaluations, capped)


def _absorb(w: sp.csc_matrix, j: int, cur: np.ndarray) -> None:
    start, end = w.indptr[j], w.indptr[j + 1]
    rows = w.indices[start:end]
    cur[rows] = np.maximum(cur[rows], w.data[start:end])


def mmr_greedy(
    x: np.ndarray,
    quality: np.ndarray,
    candidates: Sequence[int],
    budget: int,
    *,
    lam: float = 0.7,
    initial: Sequence[int] = (),
    groups: np.ndarray | None = None,
    caps: dict[int, int] | None = None,
) -> GreedyResult:
    """Maximal marginal relevance: pick ``argmax lam*q - (1-lam)*max_sim_to_selected``."""
    cand = np.asarray(list(candidates), dtype=np.int64)
    xc = x[cand]
    max_sim = np.zeros(len(cand))
    for j in initial:
        max_sim = np.maximum(max_sim, xc @ x[j])
    alive = np.ones(len(cand), dtype=bool)
    taken = dict.fromkeys((caps or {}).keys(), 0)
    picks: list[int] = []
    gains: list[float] = []
    capped: set[int] = set()
    stop = "exhausted"
    while alive.any():
        if len(picks) >= budget:
            stop = "budget"
            break
        score = np.where(alive, lam * quality[cand] - (1 - lam) * max_sim, -np.inf)
        pos = int(np.argmax(score))
        j = int(cand[pos])
        alive[pos] = False
        group = int(groups[j]) if groups is not None else None
        if caps and group in caps and taken[group] >= caps[group]:
            capped.add(j)
            continue
        picks.append(j)
        gains.append(float(score[pos]))
        if caps and group in caps:
            taken[group] += 1
        max_sim = np.maximum(max_sim, xc @ x[j])
    return GreedyResult(picks, gains, stop, len(picks) + len(capped), capped)
