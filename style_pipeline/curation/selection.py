"""The ``curated_frames`` decision: every frame kept or dropped, with a readable reason.

Order of rules: ``exclude`` override -> ``lock_in`` override (kept even if ineligible) ->
ineligible (failed gate / duplicate) -> outlier policy -> per-cluster top-k by quality ->
a diversity objective under the budget: facility location (lazy greedy) or MMR, bounded
by each character's min_share / max_share of the kept set when the day's faces are known.
The budget counts every kept frame, lock-ins included; lock-ins beyond it stay kept.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import scipy.sparse as sp

from style_pipeline.contracts.characters import CharacterSpec
from style_pipeline.contracts.curation import KnnConfig, Overrides, SelectionConfig
from style_pipeline.curation.character_counts import CharacterCount, frame_members, share_report
from style_pipeline.curation.character_shares import (
    SHARE_CODE,
    limiting,
    shared_greedy,
    trim_to_kept,
)
from style_pipeline.curation.knn import KnnGraph, knn_graph
from style_pipeline.curation.submodular import (
    GreedyResult,
    coverage_dense,
    coverage_from_knn,
    facility_location_value,
    lazy_greedy,
    mmr_greedy,
)
from style_pipeline.curation.theme_greedy import ThemeTerms, theme_lazy_greedy


@dataclass(frozen=True)
class FrameDecision:
    frame_id: str
    keep: bool
    code: str  # locked_in | selected | excluded | ineligible | outlier | cluster_cap | ...
    reason: str
    cluster: int
    quality: float
    pick: int | None = None
    gain: float | None = None


@dataclass
class SelectionResult:
    decisions: list[FrameDecision]
    coverage: float  # mean over eligible frames of the best similarity to a kept frame
    unknown_override_ids: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    gain_parts: dict[int, dict[str, float]] = field(default_factory=dict)  # theme runs only
    characters: dict[str, CharacterCount] = field(default_factory=dict)  # by character name
    unknown_groups: dict[str, CharacterCount] = field(default_factory=dict)  # unknown_<n>
    character_notes: list[str] = field(default_factory=list)  # share limits missed, and why

    @property
    def kept_ids(self) -> list[str]:
        return [d.frame_id for d in self.decisions if d.keep]


def _normalise(q: np.ndarray) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if q.size == 0:
        return q
    q = np.where(np.isnan(q), np.nanmin(q) if np.isfinite(q).any() else 0.0, q)
    lo, hi = q.min(), q.max()
    return np.ones_like(q) if hi - lo < 1e-12 else (q - lo) / (hi - lo)


def _cluster_ranks(labels: np.ndarray, quality: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """1-based quality rank of each pool frame inside its cluster (outliers: rank 1)."""
    ranks = np.ones(len(labels), dtype=np.int64)
    for label in np.unique(labels[pool]):
        if label < 0:
            continue
        members = pool[labels[pool] == label]
        order = members[np.lexsort((members, -quality[members]))]
        ranks[order] = np.arange(1, len(order) + 1)
    return ranks


def _coverage_matrix(cfg, x, knn, ground, cols) -> tuple[sp.csc_matrix, str]:
    """Coverage similarities: dense, dense on a seeded ground sample, or the k-NN graph."""
    if len(ground) * len(cols) <= cfg.dense_max_entries:
        return coverage_dense(x, ground, cols), f"dense ({len(ground)} x {len(cols)})"
    rows = cfg.dense_max_entries // max(len(cols), 1)
    if rows >= cfg.min_ground_sample:
        rng = np.random.default_rng(cfg.seed)
        sample = np.sort(rng.choice(ground, rows, replace=False))
        return coverage_dense(x, sample, cols), f"dense on {rows} sampled of {len(ground)} rows"
    if knn is None:
        knn = knn_graph(x, KnnConfig())
    if knn.n != x.shape[0]:
        raise ValueError(f"knn graph has {knn.n} rows for {x.shape[0]} frames")
    w = coverage_from_knn(knn)[ground][:, cols].tocsc()
    return w, f"k-NN graph ({knn.method}, k={knn.indices.shape[1]})"


def _run_objective(cfg, x, knn, ground, locked, pool, qn, slots, groups, caps, theme=None,
                   shares=None):  # fmt: skip
    """Greedy picks among ``pool`` (global indices) and the coverage fraction reached.

    ``shares`` (members per frame, limits, target) puts the greedy under the character
    share limits (``curation/character_shares.py``); without it the greedy runs once.
    """
    cols = np.concatenate([locked, pool]).astype(np.int64)
    w, how = _coverage_matrix(cfg, x, knn, ground, cols)
    local_groups = None if groups is None else groups[cols]
    bonus = cfg.quality_weight * qn[cols] / max(slots, 1)
    terms = None if theme is None else theme.rows(cols)

    def greedy(initial, candidates):
        group_caps = caps
        if caps is not None and len(initial) > len(locked):  # re-runs: picks so far count
            taken = np.bincount(local_groups[initial[len(locked) :]], minlength=2)
            group_caps = {g: max(c - int(taken[g]), 0) for g, c in caps.items()}
        if terms is not None:
            return theme_lazy_greedy(
                w, terms, candidates, slots, bonus=bonus, coverage_weight=cfg.coverage_weight,
                initial=initial, groups=local_groups, caps=group_caps, min_gain=cfg.min_gain,
            )  # fmt: skip
        if cfg.objective == "mmr":
            return mmr_greedy(
                x[cols], qn[cols], candidates, slots, lam=cfg.mmr_lambda, initial=initial,
                groups=local_groups, caps=group_caps,
            ), []  # fmt: skip
        return lazy_greedy(
            w, candidates, slots, bonus=bonus, coverage_weight=cfg.coverage_weight,
            initial=initial, groups=local_groups, caps=group_caps, min_gain=cfg.min_gain,
        ), []  # fmt: skip

    initial = list(range(len(locked)))
    candidates = list(range(len(locked), len(cols)))
    refused: dict[int, tuple[str, str]] = {}
    first: dict[int, list[str]] = {}
    notes: list[str] = []
    if shares is None:
        res, parts = greedy(initial, candidates)
    else:
        members, limits, target = shares
        local = [members[c] for c in cols]
        run = shared_greedy(greedy, initial, candidates, slots, local, limits, target)
        gains = dict(zip(run.picks, run.gains, strict=True))
        split = dict(zip(run.picks, run.parts, strict=True))
        refused = run.refused | trim_to_kept(run.picks, initial, local, limits)
        res = GreedyResult(run.picks, [gains[j] for j in run.picks], run.stop,
                           run.evaluations, run.capped)  # fmt: skip
        parts = [split[j] for j in run.picks]
        how += f"; character shares: {run.runs} greedy runs"
        notes = run.notes
        first = {j: run.for_minimum[j] for j in run.picks if j in run.for_minimum}  # kept ones
    coverage = facility_location_value(w, [*initial, *res.picks]) / max(w.shape[0], 1)
    res.picks = [int(cols[j]) for j in res.picks]
    res.capped = {int(cols[j]) for j in res.capped} - set(res.picks)
    return _Objective(
        res, coverage, how, dict(zip(res.picks, parts, strict=False)),
        {int(cols[j]): why for j, why in refused.items()}, notes,
        {int(cols[j]): names for j, names in first.items()},
    )  # fmt: skip


@dataclass
class _Objective:
    result: GreedyResult
    coverage: float
    how: str  # how coverage similarities were computed (and share re-runs)
    parts: dict[int, dict[str, float]]  # frame -> gain parts (theme runs)
    refused: dict[int, tuple[str, str]]  # frame -> (character, why) a share limit dropped it
    notes: list[str]
    for_minimum: dict[int, list[str]]  # frame -> characters whose min_share it was picked for


def _rule_decisions(ids, labels, q, glosh, ineligible, excluded, locked, cfg):
    """Decisions made by rules before the objective, and in-cluster quality ranks."""
    decisions: dict[int, tuple[bool, str, str]] = {}
    for i, fid in enumerate(ids):
        why = ineligible.get(fid)
        if i in excluded:
            decisions[i] = (False, "excluded", "dropped: excluded by override")
        elif i in locked:
            extra = f" (would have been dropped: {why})" if why else ""
            decisions[i] = (True, "locked_in", f"kept: locked in by override{extra}")
        elif why:
            decisions[i] = (False, "ineligible", f"dropped: {why}")
        elif labels[i] < 0 and cfg.outlier_policy == "drop":
            reason = f"dropped: outlier (GLOSH {glosh[i]:.2f}), outlier_policy=drop"
            decisions[i] = (False, "outlier", reason)
    open_ = np.array([i for i in range(len(ids)) if i not in decisions], dtype=np.int64)
    ranks = _cluster_ranks(labels, q, open_)
    k = cfg.per_cluster_k
    for i in open_:
        if k is not None and labels[i] >= 0 and ranks[i] > k:
            reason = (
                f"dropped: cluster {labels[i]} rank {ranks[i]} by quality (per-cluster top-{k})"
            )
            decisions[i] = (False, "cluster_cap", reason)
    return decisions, ranks


def select_frames(
    frame_ids: Sequence[str],
    quality: np.ndarray,
    embeddings: np.ndarray,
    labels: np.ndarray,
    config: SelectionConfig | None = None,
    *,
    ineligible: Mapping[str, str] | None = None,
    outlier_scores: np.ndarray | None = None,
    overrides: Overrides | None = None,
    knn: KnnGraph | None = None,
    theme: ThemeTerms | None = None,
    characters: Sequence[Collection[str]] | None = None,
    character_specs: Mapping[str, CharacterSpec] | None = None,
) -> SelectionResult:
    """Decide keep/drop for every frame (see module doc); deterministic for equal inputs.

    ``ineligible`` maps frame id -> why it may not be chosen ("duplicate of X",
    "failed gate (blurry)"). ``embeddings`` are unit rows. Coverage uses exact cosine
    similarities (on a seeded sample of the ground set when it is too large), or the
    ``knn`` graph from ``clusters`` when even a sample would not fit.

    With ``theme`` (role probabilities and axis tags), the objective is the theme's
    marginal-gain greedy (``curation/theme_greedy.py``) and the kept frames are at most
    the sum of the role quotas; ``quality`` is then the frames' merit (total_prelim, Elo).

    ``characters`` (per frame: the character names and ``unknown_<n>`` groups in it) is
    counted in the result; with ``character_specs``, each character's min_share and
    max_share of the kept set bound the greedy (``curation/character_shares.py``), and
    frames refused for a share get the code ``character_share``.
    """
    cfg = config or SelectionConfig()
    ids = list(frame_ids)
    n = len(ids)
    x = np.asarray(embeddings, dtype=np.float32).reshape(n, -1) if n else np.zeros((0, 1))
    labels = np.asarray(labels, dtype=np.int64)
    q = np.asarray(quality, dtype=np.float64)
    if len(set(ids)) != n:
        raise ValueError("frame ids must be unique")
    if not (len(q) == len(labels) == n):
        raise ValueError(f"lengths differ: ids {n}, quality {len(q)}, labels {len(labels)}")
    ineligible = dict(ineligible or {})
    overrides = overrides or Overrides()
    glosh = np.zeros(n) if outlier_scores is None else np.asarray(outlier_scores, dtype=np.float64)
    position = {fid: i for i, fid in enumerate(ids)}
    unknown = sorted({*overrides.lock_in, *overrides.exclude} - position.keys())
    excluded = {position[f] for f in overrides.exclude if f in position}
    locked = np.array(sorted(position[f] for f in overrides.lock_in if f in position), np.int64)
    decisions, ranks = _rule_decisions(
        ids, labels, q, glosh, ineligible, excluded, set(locked), cfg
    )
    pool = np.array([i for i in range(n) if i not in decisions], dtype=np.int64)
    eligible = {i for i in range(n) if i not in excluded and ids[i] not in ineligible}
    ground = np.array(sorted(eligible | set(locked)), dtype=np.int64)
    cap = cfg.budget if theme is None else min(cfg.budget, int(theme.quotas.sum()))
    slots = max(cap - len(locked), 0)
    notes = []
    if theme is not None and cap < cfg.budget:
        notes.append(f"the theme's role quotas ({cap} frames) cap the budget {cfg.budget}")
    if len(locked) > cfg.budget:
        notes.append(f"{len(locked)} lock-ins exceed the budget {cfg.budget}; all kept")
    groups, caps = None, None
    if cfg.outlier_policy == "budgeted":
        groups = (labels < 0).astype(np.int64)
        caps = {1: int(np.floor(cfg.outlier_budget_fraction * cfg.budget))}
    qn = np.zeros(n)
    qn[pool] = _normalise(q[pool])
    members = frame_members(characters, n)
    limits = limiting(character_specs or {}) if characters is not None else {}
    shares = (members, limits, cap) if limits else None
    coverage, result, picks, parts, refused, first = 0.0, None, {}, {}, {}, {}
    objective = cfg.objective if theme is None else "theme_greedy"
    if len(pool) and slots > 0:
        run = _run_objective(
            cfg, x, knn, ground, locked, pool, qn, slots, groups, caps, theme, shares
        )
        result, coverage, parts, refused = run.result, run.coverage, run.parts, run.refused
        first = run.for_minimum
        picks = {
            j: (p + 1, g) for p, (j, g) in enumerate(zip(result.picks, result.gains, strict=True))
        }
        notes.extend(run.notes)
        notes.append(
            f"{objective}: {len(picks)} picks, {result.evaluations} gain evaluations, "
            f"stop={result.stop}; coverage similarities: {run.how}"
        )
        if caps is not None and sum(labels[j] < 0 for j in result.picks) < caps[1]:
            result.capped = set()  # the budget is not full (share re-runs dropped picks)
    out = []
    for i, fid in enumerate(ids):
        pick, gain = picks.get(i, (None, None))
        if i in decisions:
            keep, code, reason = decisions[i]
        elif pick is not None:
            where = (
                f"outlier (GLOSH {glosh[i]:.2f})"
                if labels[i] < 0
                else f"cluster {labels[i]} top-{ranks[i]} by quality"
            )
            keep, code = True, "selected"
            reason = f"kept: {where}; {objective} pick {pick} of {slots} (gain {gain:.4g}"
            split = ", ".join(f"{k} {v:.3g}" for k, v in parts.get(i, {}).items())
            reason += f": {split})" if split else ")"
            if i in first:
                reason += f"; picked first for the min_share of {', '.join(first[i])}"
        elif i in refused:
            keep, code, reason = False, SHARE_CODE, refused[i][1]
        elif result is not None and i in result.capped:
            if caps is None:  # only the outlier budget caps candidates
                raise RuntimeError(f"candidate {fid} was capped without an outlier budget")
            keep, code = False, "outlier_budget"
            reason = f"dropped: outlier budget full ({caps[1]} outliers of budget {cfg.budget})"
        elif result is not None and result.stop == "min_gain":
            keep, code = False, "low_gain"
            reason = f"dropped: marginal gain below min_gain {cfg.min_gain}"
        else:
            keep, code = False, "over_budget"
            reason = f"dropped: over budget ({cap} frames, {len(locked)} locked in)"
        out.append(FrameDecision(fid, keep, code, reason, int(labels[i]), float(q[i]), pick, gain))
    report = (
        share_report(
            [d.keep for d in out], members, character_specs or {}, refused, [*locked, *pool]
        )  # fmt: skip
        if characters is not None
        else ({}, {}, [])
    )
    return SelectionResult(out, coverage, unknown, notes, parts, *report)


def decisions_frame(result: SelectionResult) -> pl.DataFrame:
    """The ``curated_frames`` table: one row per frame with keep, code and reason."""
    rows = [d.__dict__ for d in result.decisions]
    schema = {
        "frame_id": pl.String,
        "keep": pl.Boolean,
        "code": pl.String,
        "reason": pl.String,
        "cluster": pl.Int64,
        "quality": pl.Float64,
        "pick": pl.Int64,
        "gain": pl.Float64,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def ineligibility_reasons(
    frame_ids: Sequence[str],
    passed: Sequence[bool],
    gate_reasons: Sequence[Sequence[str]],
    duplicate_of: Sequence[str | None],
) -> dict[str, str]:
    """Frame id -> "duplicate of X" / "failed gate (blurry, noisy)" for ineligible frames."""
    out = {}
    for fid, ok, codes, dup in zip(frame_ids, passed, gate_reasons, duplicate_of, strict=True):
        parts = []
        if dup:
            parts.append(f"duplicate of {dup}")
        if not ok:
            parts.append(f"failed gate ({', '.join(codes) or 'unspecified'})")
        if parts:
            out[fid] = "; ".join(parts)
    return out
