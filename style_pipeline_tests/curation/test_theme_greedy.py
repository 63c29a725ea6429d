"""The theme's marginal-gain greedy: lazy == plain greedy, coverage and role terms, overrides."""

from __future__ import annotations

import numpy as np
import pytest

from style_pipeline.contracts.curation import Overrides, SelectionConfig
from style_pipeline.curation.selection import select_frames
from style_pipeline.curation.submodular import coverage_dense
from style_pipeline.curation.theme_greedy import (
    ThemeTerms,
    _absorb,
    _parts,
    _State,
    axis_terms,
    theme_lazy_greedy,
)
from style_pipeline_tests.curation.test_selection import _day

AXES = {"time_of_day": ("day", "dusk", "night"), "orientation": ("landscape", "portrait")}


def _terms(n: int, seed: int = 0, *, night: set[int] = frozenset(), **kw) -> ThemeTerms:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(3), size=n)
    tags = [
        {"time_of_day": "night" if i in night else "day", "orientation": "landscape"}
        for i in range(n)
    ]
    ids, weights = axis_terms(tags, AXES, {"time_of_day": 1.0, "orientation": 0.5})
    return ThemeTerms(probs, np.array([1.0, 2.0, 5.0]), ids, weights, **kw)


def _plain_greedy(w, terms, budget, bonus):
    """The non-lazy greedy: every candidate's gain re-evaluated at every step."""
    st = _State(np.zeros(w.shape[0]), np.zeros(3), [set(), set()])
    scale, left, picks = 1.0 / w.shape[0], list(range(w.shape[1])), []
    for _ in range(budget):
        gains = [sum(_parts(w, j, st, terms, scale, bonus, budget).values()) for j in left]
        j = left[int(np.argmax(gains))]
        _absorb(w, j, st, terms)
        picks.append(j)
        left.remove(j)
    return picks


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lazy_greedy_matches_the_plain_greedy(seed):
    ids, q, x, _, _ = _day(seed)
    cols = np.arange(len(ids))
    w = coverage_dense(x, cols, cols)
    terms = _terms(len(ids), seed, night={3, 17, 30})
    bonus = 0.5 * q / 8
    result, parts = theme_lazy_greedy(w, terms, cols, 8, bonus=bonus)
    assert result.picks == _plain_greedy(w, terms, 8, bonus)
    assert result.evaluations < len(ids) * 8  # lazy: far fewer than n per pick
    assert all(set(p) == {"diversity", "merit", "role", "coverage"} for p in parts)
    assert result.gains == pytest.approx([sum(p.values()) for p in parts])
    assert all(a >= b - 1e-12 for a, b in zip(result.gains, result.gains[1:], strict=False))


def test_coverage_term_brings_in_the_missing_night_frame():
    ids, q, x, labels, glosh = _day(4)
    night = {int(np.argmin(q))}  # the worst frame is the only night shot
    cfg = SelectionConfig(budget=6, per_cluster_k=None, outlier_policy="keep")
    with_axis = select_frames(ids, q, x, labels, cfg, theme=_terms(len(ids), night=night))
    no_axis = _terms(len(ids), night=night, axis_weight=0.0)
    without = select_frames(ids, q, x, labels, cfg, theme=no_axis)
    (i,) = night
    assert ids[i] in with_axis.kept_ids and ids[i] not in without.kept_ids
    assert "coverage" in next(d.reason for d in with_axis.decisions if d.frame_id == ids[i])


def test_theme_selection_caps_at_quotas_and_honours_overrides():
    ids, q, x, labels, glosh = _day(5)
    terms = _terms(len(ids))  # quotas 1 + 2 + 5 = 8
    overrides = Overrides(lock_in=[ids[0]], exclude=[ids[1]])
    why = {ids[2]: "failed theme constraints (low_q_tech)"}
    cfg = SelectionConfig(budget=20)
    res = select_frames(ids, q, x, labels, cfg, overrides=overrides, theme=terms, ineligible=why)
    by_id = {d.frame_id: d for d in res.decisions}
    assert len(res.kept_ids) == 8 and by_id[ids[0]].code == "locked_in"
    assert by_id[ids[1]].code == "excluded" and not by_id[ids[1]].keep
    assert by_id[ids[2]].code == "ineligible" and "low_q_tech" in by_id[ids[2]].reason
    assert any("role quotas (8 frames) cap the budget 20" in n for n in res.notes)
    assert set(res.gain_parts) == {i for i, d in enumerate(res.decisions) if d.code == "selected"}
    again = select_frames(ids, q, x, labels, cfg, overrides=overrides, theme=terms, ineligible=why)
    assert again.kept_ids == res.kept_ids  # deterministic


def test_axis_terms_index_values_and_normalise_weights():
    tags = [{"time_of_day": "night"}, {"orientation": "portrait", "time_of_day": "noon"}]
    ids, weights = axis_terms(tags, AXES, {"time_of_day": 1.0, "orientation": 0.5})
    assert ids.tolist() == [[2, -1], [-1, 1]]
    assert float(weights @ np.array([3, 2])) == pytest.approx(1.0)
