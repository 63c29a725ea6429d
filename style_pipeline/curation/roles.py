"""Roles of the final sequence (opener, anchor, body, closer ...): fit and assignment.

A frame's affinity to a role is its scores weighted by the role's rubric (a weighted
mean, so in [0, 1]); a softmax over roles at ``temperature`` turns affinities into
probabilities. Picked frames are then assigned to roles under the theme's quotas, the
scarcest role first, preferring the ranking's heroes, then alternates, then the best fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from style_pipeline.contracts.themes import SCORES, Role

EXTRA = "extra"  # a kept frame beyond every role's quota (only lock-ins can be)


def role_affinities(scores: np.ndarray, roles: Sequence[Role]) -> np.ndarray:
    """(n, roles) weighted means of the (n, len(SCORES)) score matrix, in [0, 1]."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] != len(SCORES):
        raise ValueError(f"scores must be (n, {len(SCORES)}) in {SCORES}, got {scores.shape}")
    weights = np.array([[getattr(r.affinity, s) for s in SCORES] for r in roles], np.float64)
    totals = weights.sum(axis=1)
    if (totals <= 0).any():
        bad = [r.name for r, t in zip(roles, totals, strict=True) if t <= 0]
        raise ValueError(f"roles {bad}: affinity weights are all zero")
    return scores @ (weights / totals[:, None]).T


def role_probabilities(
    scores: np.ndarray, roles: Sequence[Role], temperature: float = 0.05
) -> np.ndarray:
    """(n, roles) softmax of the affinities at ``temperature`` (rows sum to 1)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits = role_affinities(scores, roles) / temperature
    logits -= logits.max(axis=1, keepdims=True) if len(logits) else 0.0
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def assign_roles(
    picked: Sequence[int],
    probs: np.ndarray,
    roles: Sequence[Role],
    preference: np.ndarray | None = None,
) -> dict[int, str]:
    """Frame index -> role for every picked frame, quotas honoured.

    Roles are filled scarcest first (smallest quota, then theme order); each takes the
    free frames with the highest ``preference`` (e.g. hero 2, alternate 1, else 0; per
    frame (n,) or per frame and role (n, roles)), ties broken by its probability, then
    index. Frames left over when every quota is full get ``EXTRA``.
    """
    shape = (len(probs), len(roles))
    pref = np.zeros(shape) if preference is None else np.asarray(preference, np.float64)
    if pref.ndim == 1:
        pref = np.repeat(pref[:, None], len(roles), axis=1)
    if pref.shape != shape:
        raise ValueError(f"preference must be (n,) or {shape}, got {pref.shape}")
    free = list(dict.fromkeys(int(i) for i in picked))
    out: dict[int, str] = {}
    order = sorted(range(len(roles)), key=lambda r: (roles[r].quota, r))
    for r in order:
        ranked = sorted(free, key=lambda i: (-pref[i, r], -probs[i, r], i))
        for i in ranked[: roles[r].quota]:
            out[i] = roles[r].name
        free = [i for i in free if i not in out]
    for i in free:
        out[i] = EXTRA
    return out


def role_counts(assigned: Mapping[int, str], roles: Sequence[Role]) -> dict[str, int]:
    """role -> frames assigned (every role listed; ``extra`` only when used)."""
    counts = {r.name: 0 for r in roles}
    for role in assigned.values():
        counts[role] = counts.get(role, 0) + 1
    return counts
