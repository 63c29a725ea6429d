"""Clustering: blob recovery, tiny inputs, k-NN graphs (exact and IVF), medoids, tables."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from style_pipeline.contracts.curation import ClusterConfig, KnnConfig
from style_pipeline.curation.clustering import (
    cluster_embeddings,
    clusters_frame,
    knn_from_frame,
    medoids,
)
from style_pipeline.curation.knn import knn_graph, pca_apply, pca_fit


def blobs(n_per: int, centers: int, dim: int = 32, spread: float = 0.05, seed: int = 0):
    """Unit vectors around ``centers`` random directions, and their true labels."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim))
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    truth = np.repeat(np.arange(centers), n_per)
    x = c[truth] + spread * rng.normal(size=(len(truth), dim))
    order = rng.permutation(len(truth))
    x = x[order] / np.linalg.norm(x[order], axis=1, keepdims=True)
    return x.astype(np.float32), truth[order]


@pytest.mark.parametrize(("centers", "seed"), [(2, 0), (3, 1), (5, 2), (8, 3)])
def test_recovers_well_separated_blobs(centers, seed):
    x, truth = blobs(30, centers, seed=seed)
    result = cluster_embeddings(x)
    assert result.n_clusters == centers
    assert adjusted_rand_score(truth, result.labels) > 0.95
    assert result.n_outliers <= len(x) * 0.05
    assert set(result.medoids) == set(range(centers))
    for label, row in result.medoids.items():
        assert result.labels[row] == label


def test_scattered_point_is_an_outlier():
    x, _ = blobs(25, 3, seed=4)
    far = -x.mean(axis=0, keepdims=True)
    x = np.vstack([x, far / np.linalg.norm(far)]).astype(np.float32)
    result = cluster_embeddings(x)
    assert result.labels[-1] == -1
    assert result.outlier_scores[-1] == result.outlier_scores.max()
    assert ((result.outlier_scores >= 0) & (result.outlier_scores <= 1)).all()
    assert ((result.probabilities >= 0) & (result.probabilities <= 1)).all()


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4])
def test_tiny_days_do_not_crash(n):
    x = np.eye(8, dtype=np.float32)[:n]
    result = cluster_embeddings(x, ClusterConfig(min_cluster_size=5))
    assert result.labels.shape == result.probabilities.shape == result.outlier_scores.shape == (n,)
    assert (result.labels == 0).all()
    assert result.n_clusters == (1 if n else 0)
    assert result.knn.indices.shape == (n, max(n - 1, 0))
    assert clusters_frame([f"f{i}" for i in range(n)], result).height == n


def test_identical_points_form_one_cluster():
    x = np.tile(np.eye(8, dtype=np.float32)[:1], (12, 1))
    result = cluster_embeddings(x)
    assert (result.labels == 0).all() and result.n_clusters == 1
    assert any("one cluster" in note for note in result.notes)


def test_rejects_non_matrix():
    with pytest.raises(ValueError, match="2-D"):
        cluster_embeddings(np.zeros(5, dtype=np.float32))


def test_medoid_is_the_central_point():
    x = np.array([[1, 0], [0.9, 0.1], [0.8, 0.2], [0, 1]], dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    assert medoids(x, np.array([0, 0, 0, -1])) == {0: 1}


@pytest.mark.parametrize("exact_max_n", [1_000, 50])
def test_knn_graph_excludes_self_and_is_sorted(exact_max_n):
    x, truth = blobs(40, 4, seed=5)
    graph = knn_graph(x, KnnConfig(k=5, exact_max_n=exact_max_n, ivf_dim=8, ivf_nprobe=4))
    assert graph.method.startswith("exact" if exact_max_n >= len(x) else "ivf")
    assert graph.indices.shape == (len(x), 5)
    assert not (graph.indices == np.arange(len(x))[:, None]).any()
    assert (np.diff(graph.sims, axis=1) <= 1e-6).all()
    rows = np.arange(len(x))[:, None]
    np.testing.assert_allclose(graph.sims, np.sum(x[rows] * x[graph.indices], axis=2), atol=1e-5)
    assert (truth[graph.indices] == truth[:, None]).mean() > 0.95


def test_ivf_recall_against_exact():
    x, _ = blobs(100, 6, dim=48, spread=0.3, seed=6)
    exact = knn_graph(x, KnnConfig(k=5))
    ivf = knn_graph(x, KnnConfig(k=5, exact_max_n=10, ivf_nprobe=6, ivf_dim=None))
    pairs = zip(exact.indices, ivf.indices, strict=True)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in pairs])
    assert recall > 0.8


def test_duplicates_never_list_themselves():
    x = np.tile(np.eye(4, dtype=np.float32), (6, 1))  # every vector 6 times
    graph = knn_graph(x, KnnConfig(k=3))
    assert not (graph.indices == np.arange(len(x))[:, None]).any()


def test_pca_is_deterministic_and_orthonormal():
    x, _ = blobs(50, 3, dim=16, seed=7)
    mean, axes = pca_fit(x, 4, sample=100, seed=1)
    mean2, axes2 = pca_fit(x, 4, sample=100, seed=1)
    np.testing.assert_array_equal(axes, axes2)
    np.testing.assert_allclose(axes.T @ axes, np.eye(4), atol=1e-5)
    z = pca_apply(x, mean, axes)
    assert z.shape == (150, 4) and (np.diff(z.var(axis=0)) <= 1e-6).all()


def test_table_round_trips_the_graph():
    x, _ = blobs(10, 2, seed=8)
    result = cluster_embeddings(x, ClusterConfig(knn=KnnConfig(k=4)))
    ids = [f"frame-{i}" for i in range(len(x))]
    table = clusters_frame(ids, result)
    assert table.columns == [
        "frame_id",
        "cluster",
        "is_outlier",
        "membership",
        "outlier_score",
        "is_medoid",
        "neighbor_ids",
        "neighbor_sims",
    ]
    assert table["is_medoid"].sum() == result.n_clusters
    graph = knn_from_frame(table)
    np.testing.assert_array_equal(graph.indices, result.knn.indices)
    np.testing.assert_allclose(graph.sims, result.knn.sims)


def test_clustering_is_deterministic():
    x, _ = blobs(30, 4, seed=9)
    a, b = cluster_embeddings(x), cluster_embeddings(x)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.outlier_scores, b.outlier_scores)
    assert a.medoids == b.medoids
