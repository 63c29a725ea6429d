"""Selection: submodular objective properties, budget, overrides, reasons, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from style_pipeline.contracts.curation import Overrides, SelectionConfig
from style_pipeline.curation.clustering import cluster_embeddings
from style_pipeline.curation.overrides import overrides_for_partition, parse_overrides
from style_pipeline.curation.selection import decisions_frame, ineligibility_reasons, select_frames
from style_pipeline.curation.submodular import (
    coverage_from_knn,
    facility_location_value,
    lazy_greedy,
)
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.test_clustering import blobs


def _day(seed: int = 0, n_per: int = 12, centers: int = 4):
    """A synthetic day: ids, quality, unit embeddings, cluster labels and GLOSH scores."""
    x, _ = blobs(n_per, centers, seed=seed)
    far = np.random.default_rng(seed + 1000).normal(size=(2, x.shape[1]))
    x = np.vstack([x, far / np.linalg.norm(far, axis=1, keepdims=True)]).astype(np.float32)
    clusters = cluster_embeddings(x)
    ids = [f"f{i:03d}" for i in range(len(x))]
    quality = np.random.default_rng(seed + 100).random(len(x))
    return ids, quality, x, clusters.labels, clusters.outlier_scores


def _random_w(seed: int, rows: int = 15, cols: int = 10) -> sp.csc_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((rows, cols)) * (rng.random((rows, cols)) < 0.5)
    return sp.csc_matrix(dense)


@pytest.mark.parametrize("seed", range(6))
def test_facility_location_is_monotone_and_submodular(seed):
    w = _random_w(seed)
    rng = np.random.default_rng(seed)
    small = list(rng.choice(10, 3, replace=False))
    large = small + [j for j in rng.choice(10, 4, replace=False) if j not in small]
    for j in range(10):
        before = facility_location_value(w, small)
        after = facility_location_value(w, small + [j])
        assert after >= before - 1e-12  # adding an element never lowers the value
        gain_small = after - before
        gain_large = facility_location_value(w, large + [j]) - facility_location_value(w, large)
        assert gain_small >= gain_large - 1e-12  # diminishing returns
    assert facility_location_value(w, []) == 0.0


def _naive_greedy(w: sp.csc_matrix, budget: int, bonus: np.ndarray) -> list[int]:
    picks: list[int] = []
    for _ in range(budget):
        base = facility_location_value(w, picks) / w.shape[0]
        gains = [
            -np.inf
            if j in picks
            else facility_location_value(w, picks + [j]) / w.shape[0] - base + bonus[j]
            for j in range(w.shape[1])
        ]
        picks.append(int(np.argmax(gains)))
    return picks


@pytest.mark.parametrize(("seed", "budget"), list(itertools.product(range(4), [1, 3, 6])))
def test_lazy_greedy_matches_plain_greedy(seed, budget):
    w = _random_w(seed)
    bonus = np.random.default_rng(seed).random(10) * 0.05
    lazy = lazy_greedy(w, range(10), budget, bonus=bonus)
    assert lazy.picks == _naive_greedy(w, budget, bonus)
    assert lazy.gains == sorted(lazy.gains, reverse=True)


def test_lazy_greedy_respects_group_caps():
    w = _random_w(9)
    groups = np.array([1] * 5 + [0] * 5)
    res = lazy_greedy(w, range(10), 6, groups=groups, caps={1: 1})
    assert sum(groups[j] for j in res.picks) <= 1 and len(res.picks) == 6


def test_coverage_from_knn_is_symmetric_with_unit_diagonal():
    x, _ = blobs(10, 2, seed=3)
    from style_pipeline.contracts.curation import KnnConfig
    from style_pipeline.curation.knn import knn_graph

    w = coverage_from_knn(knn_graph(x, KnnConfig(k=3)))
    assert (abs(w - w.T) > 1e-6).nnz == 0
    np.testing.assert_allclose(w.diagonal(), 1.0)


@pytest.mark.parametrize(
    ("objective", "budget", "policy"),
    list(itertools.product(["facility_location", "mmr"], [0, 1, 4, 10, 100], ["keep", "budgeted"])),
)
def test_respects_budget_and_explains_every_frame(objective, budget, policy):
    ids, q, x, labels, glosh = _day(1)
    cfg = SelectionConfig(budget=budget, objective=objective, outlier_policy=policy)
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh)
    kept = result.kept_ids
    assert len(kept) <= budget
    assert len(kept) == min(budget, len(ids)) or budget > 4 * cfg.per_cluster_k
    assert [d.frame_id for d in result.decisions] == ids
    for d in result.decisions:
        assert d.reason.startswith("kept: " if d.keep else "dropped: ")
        assert d.code and len(d.reason) > len("dropped: ")


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("objective", ["facility_location", "mmr"])
def test_lock_in_always_kept_and_exclude_never(seed, objective):
    ids, q, x, labels, glosh = _day(seed)
    best = ids[int(np.argmax(q))]
    locked = [ids[0], ids[-1], ids[5]]  # -1 is an outlier; 5 is made ineligible below
    ineligible = {ids[5]: "failed gate (blurry)"}
    overrides = Overrides(lock_in=locked, exclude=[best] if best not in locked else [])
    cfg = SelectionConfig(budget=2, objective=objective, outlier_policy="drop")
    result = select_frames(
        ids, q, x, labels, cfg, ineligible=ineligible, overrides=overrides, outlier_scores=glosh
    )
    by_id = {d.frame_id: d for d in result.decisions}
    for fid in locked:
        assert by_id[fid].keep and by_id[fid].code == "locked_in"
    assert "failed gate (blurry)" in by_id[ids[5]].reason
    for fid in overrides.exclude:
        assert not by_id[fid].keep and by_id[fid].reason == "dropped: excluded by override"
    assert len(result.kept_ids) == 3  # lock-ins beyond the budget stay kept
    assert any("exceed the budget" in n for n in result.notes)


def test_ineligible_and_outlier_reasons():
    ids, q, x, labels, glosh = _day(2)
    ineligible = ineligibility_reasons(
        ids[:3],
        [False, True, False],
        [["blurry", "noisy"], [], ["underexposed"]],
        [None, ids[7], ids[8]],
    )
    assert ineligible == {
        ids[0]: "failed gate (blurry, noisy)",
        ids[1]: f"duplicate of {ids[7]}",
        ids[2]: f"duplicate of {ids[8]}; failed gate (underexposed)",
    }
    cfg = SelectionConfig(budget=100, outlier_policy="drop")
    result = select_frames(ids, q, x, labels, cfg, ineligible=ineligible, outlier_scores=glosh)
    by_id = {d.frame_id: d for d in result.decisions}
    assert by_id[ids[0]].reason == "dropped: failed gate (blurry, noisy)"
    assert by_id[ids[1]].reason == f"dropped: duplicate of {ids[7]}"
    outliers = [d for d in result.decisions if d.cluster < 0]
    assert outliers and all(not d.keep and d.code == "outlier" for d in outliers)


@pytest.mark.parametrize(("policy", "fraction"), [("keep", 0.1), ("budgeted", 0.0)])
def test_outlier_policies(policy, fraction):
    ids, q, x, labels, glosh = _day(3)
    q[labels < 0] = 10.0  # outliers are the best-quality frames
    cfg = SelectionConfig(budget=6, outlier_policy=policy, outlier_budget_fraction=fraction)
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh)
    kept_outliers = [d for d in result.decisions if d.keep and d.cluster < 0]
    if policy == "keep":
        assert kept_outliers and "outlier (GLOSH" in kept_outliers[0].reason
    else:
        assert not kept_outliers
        assert any(d.code == "outlier_budget" for d in result.decisions)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_per_cluster_top_k_by_quality(k):
    ids, q, x, labels, glosh = _day(4)
    cfg = SelectionConfig(budget=100, per_cluster_k=k, outlier_policy="drop")
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh)
    for label in set(labels[labels >= 0]):
        members = np.flatnonzero(labels == label)
        kept = {ids[i] for i in members if result.decisions[i].keep}
        top = {ids[i] for i in members[np.argsort(-q[members])][:k]}
        assert kept == top
    capped = [d for d in result.decisions if d.code == "cluster_cap"]
    assert capped and all(f"(per-cluster top-{k})" in d.reason for d in capped)


@pytest.mark.parametrize(
    "entries", [16_000_000, 40 * 30, 10]
)  # dense, dense on a ground sample, k-NN graph
def test_budget_equal_to_clusters_covers_every_cluster(entries):
    ids, q, x, labels, glosh = _day(5, n_per=15, centers=5)
    n_clusters = len(set(labels[labels >= 0]))
    cfg = SelectionConfig(
        budget=n_clusters,
        outlier_policy="drop",
        quality_weight=0.0,
        dense_max_entries=entries,
        min_ground_sample=20,
    )
    result = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh)
    assert {d.cluster for d in result.decisions if d.keep} == set(labels[labels >= 0])
    assert 0 < result.coverage <= 1


def test_deterministic():
    ids, q, x, labels, glosh = _day(6)
    cfg = SelectionConfig(budget=7)
    a = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh)
    b = select_frames(ids, q, x, labels, cfg, outlier_scores=glosh)
    assert a.decisions == b.decisions and a.coverage == b.coverage


def test_unknown_override_ids_are_reported():
    ids, q, x, labels, _ = _day(7)
    overrides = Overrides(lock_in=["missing-1"], exclude=["missing-2", ids[0]])
    result = select_frames(ids, q, x, labels, overrides=overrides)
    assert result.unknown_override_ids == ["missing-1", "missing-2"]


def test_empty_day_and_input_validation():
    empty = select_frames([], np.zeros(0), np.zeros((0, 4)), np.zeros(0, int))
    assert empty.decisions == [] and decisions_frame(empty).height == 0
    with pytest.raises(ValueError, match="unique"):
        select_frames(["a", "a"], np.zeros(2), np.eye(2), np.zeros(2, int))
    with pytest.raises(ValueError, match="lengths differ"):
        select_frames(["a", "b"], np.zeros(3), np.eye(2), np.zeros(2, int))


def test_decisions_table():
    ids, q, x, labels, glosh = _day(8)
    table = decisions_frame(select_frames(ids, q, x, labels, SelectionConfig(budget=3)))
    assert table.columns == [
        "frame_id",
        "keep",
        "code",
        "reason",
        "cluster",
        "quality",
        "pick",
        "gain",
    ]
    assert table["keep"].sum() == 3 and table.height == len(ids)
    assert sorted(table.filter(table["keep"])["pick"].to_list()) == [1, 2, 3]


def test_overrides_validation_and_parsing():
    with pytest.raises(ValidationError, match="both locked in and excluded"):
        Overrides(lock_in=["a"], exclude=["a"])
    with pytest.raises(ValidationError):
        Overrides.model_validate({"lock_in": [], "keep": ["a"]})
    assert parse_overrides("lock_in: [a, b]\nexclude: [c]\n").lock_in == ["a", "b"]
    assert parse_overrides('{"exclude": ["c"]}', "x.json").exclude == ["c"]
    assert parse_overrides("") == Overrides()
    with pytest.raises(ValueError, match="mapping"):
        parse_overrides("- a\n- b\n")


def test_overrides_for_partition(tmp_path):
    store = Store(str(tmp_path))
    assert overrides_for_partition(store, "2026-11-21") == Overrides()
    store.put_bytes(b"lock_in: [f1]\n", "overrides/2026-11-21.yaml")
    assert overrides_for_partition(store, "2026-11-21").lock_in == ["f1"]
    store.put_bytes(b'{"exclude": ["f2"]}', "overrides/2026-11-21.json")
    with pytest.raises(ValueError, match="several override files"):
        overrides_for_partition(store, "2026-11-21")
