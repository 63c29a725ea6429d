"""Name faces: match each face descriptor to the characters' references, then group the
faces that match no one into ``unknown_<n>`` groups with HDBSCAN.

Distance of a face ``x`` to a character with reference descriptors ``R`` (euclidean, on
the raw descriptors; dlib: the same person is < 0.6 apart)::

    d(x, c) = min(min_j |x - R_j|, |x - mean(R)|)

the nearest reference covers a character seen in several looks (the centroid of two looks
can lie between them), the centroid averages out one reference's pose or light. A face
is a character's when its best distance ``d1 <= match_threshold`` and the second best
character is at least ``match_margin`` farther (``d2 - d1 >= match_margin``; with a single
character there is no second and no margin test). Its confidence in [0, 1]::

    s = match_threshold / 12                      (0.05 for dlib's 0.6)
    confidence = sigmoid((match_threshold - d1) / s) * (1 - exp(-(d2 - d1) / s))

0.5 at the threshold and ~1 at half of it; the margin factor is 1 with one character and
0.63 at a margin of ``s``. Unmatched faces (too far, or too close to two characters) are
clustered with HDBSCAN (euclidean, ``min_cluster_size``, a single group allowed); a member
farther than ``match_threshold`` from its group's centroid is dropped to noise (a group is
one person). Groups are numbered by size, largest ``unknown_0``, ties by their first face
in input order; their confidence is HDBSCAN's membership probability. No Dagster here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import hdbscan
import numpy as np

from style_pipeline.contracts.characters import UNKNOWN_PREFIX

_SCALE_PER_THRESHOLD = 1 / 12


@dataclass(frozen=True)
class Matches:
    """Per face (rows of the input): best character or None, distances, confidence."""

    label: list[str | None]  # the character's name when accepted, else None
    distance: np.ndarray  # best distance (inf without characters)
    margin: np.ndarray  # second best - best (inf with fewer than two characters)
    confidence: np.ndarray  # 0 when not accepted


@dataclass(frozen=True)
class UnknownGroups:
    """Per face: its group number (-1: noise) and membership; per group its representative."""

    group: np.ndarray  # int64, 0 = the largest group
    probability: np.ndarray  # float32 in [0, 1], 0 for noise
    representative: tuple[int, ...]  # row index of each group's face nearest its centroid

    @property
    def n_groups(self) -> int:
        return len(self.representative)


def _matrix(x: np.ndarray) -> np.ndarray:
    """``x`` as an (n, d) float64 matrix (an empty input: (0, 0))."""
    x = np.asarray(x, dtype=np.float64)
    return x if x.ndim == 2 else x.reshape(len(x), -1) if x.size else np.zeros((len(x), 0))


def unknown_label(group: int) -> str:
    return f"{UNKNOWN_PREFIX}{group}"


def character_distances(
    x: np.ndarray, references: Mapping[str, np.ndarray]
) -> tuple[list[str], np.ndarray]:
    """Names (sorted) and the (faces, characters) matrix of ``d(x, c)`` (see the module)."""
    names = sorted(name for name, refs in references.items() if len(refs))
    out = np.full((len(x), len(names)), np.inf, dtype=np.float64)
    if not len(x):
        return names, out
    for k, name in enumerate(names):
        refs = np.asarray(references[name], dtype=np.float64)
        nearest = _pairwise(x, refs).min(axis=1)
        centroid = np.linalg.norm(x - refs.mean(axis=0), axis=1)
        out[:, k] = np.minimum(nearest, centroid)
    return names, out


def _pairwise(x: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """(n, k) euclidean distances, through |x|^2 + |r|^2 - 2 x.r (no (n, k, d) array)."""
    squared = (x * x).sum(axis=1)[:, None] + (refs * refs).sum(axis=1)[None, :] - 2 * x @ refs.T
    return np.sqrt(np.maximum(squared, 0.0))


def confidence(best: np.ndarray, margin: np.ndarray, threshold: float) -> np.ndarray:
    """The module's confidence formula (``margin`` inf: one character, factor 1)."""
    scale = threshold * _SCALE_PER_THRESHOLD
    with np.errstate(over="ignore"):
        closeness = 1.0 / (1.0 + np.exp(-(threshold - best) / scale))
        separation = 1.0 - np.exp(-np.maximum(margin, 0.0) / scale)
    return np.clip(closeness * separation, 0.0, 1.0)


def match_faces(
    x: np.ndarray, references: Mapping[str, np.ndarray], threshold: float, min_margin: float
) -> Matches:
    """Match descriptors ``x`` (n, d) to the characters' reference descriptors."""
    x = _matrix(x)
    names, dist = character_distances(x, references)
    n = len(x)
    if not names:
        inf = np.full(n, np.inf)
        return Matches([None] * n, inf, inf.copy(), np.zeros(n))
    order = np.argsort(dist, axis=1, kind="stable")
    best = dist[np.arange(n), order[:, 0]]
    second = dist[np.arange(n), order[:, 1]] if len(names) > 1 else np.full(n, np.inf)
    margin = second - best
    accepted = (best <= threshold) & (margin >= min_margin)
    conf = np.where(accepted, confidence(best, margin, threshold), 0.0)
    labels = [names[order[i, 0]] if accepted[i] else None for i in range(n)]
    return Matches(labels, best, margin, conf)


def group_unknown(x: np.ndarray, min_cluster_size: int, max_distance: float) -> UnknownGroups:
    """HDBSCAN groups of descriptors ``x`` (n, d) (see the module); fewer faces than
    ``min_cluster_size`` are all noise."""
    x = _matrix(x)
    n = len(x)
    if n < max(2, min_cluster_size):
        return UnknownGroups(np.full(n, -1, np.int64), np.zeros(n, np.float32), ())
    model = hdbscan.HDBSCAN(
        min_cluster_size=min_cluster_size,
        min_samples=min(min_cluster_size, n - 1),
        metric="euclidean",
        allow_single_cluster=True,
    )
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(x)
    raw = model.labels_.astype(np.int64)
    prob = np.nan_to_num(model.probabilities_, nan=0.0).astype(np.float32)
    groups: list[np.ndarray] = []
    for label in np.unique(raw[raw >= 0]):
        members = np.flatnonzero(raw == label)
        far = np.linalg.norm(x[members] - x[members].mean(axis=0), axis=1) > max_distance
        members = members[~far]
        if len(members) >= min_cluster_size:
            groups.append(members)
    # largest first; ties by the first face in input order, so a re-run numbers alike
    groups.sort(key=lambda m: (-len(m), int(m[0])))
    group = np.full(n, -1, np.int64)
    representative = []
    for number, members in enumerate(groups):
        group[members] = number
        centre = x[members].mean(axis=0)
        representative.append(int(members[np.argmin(np.linalg.norm(x[members] - centre, axis=1))]))
    prob = np.where(group >= 0, np.clip(prob, 0.0, 1.0), 0.0).astype(np.float32)
    return UnknownGroups(group, prob, tuple(representative))


def finite_or_none(value: float) -> float | None:
    """A table cell: ``None`` for inf/nan (no character, no second character)."""
    return float(value) if math.isfinite(value) else None
