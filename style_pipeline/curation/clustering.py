"""Clusters of a day's embeddings: k-NN graph, PCA, HDBSCAN labels, GLOSH outliers, medoids.

Label ``-1`` marks HDBSCAN noise (outliers). Fewer points than ``min_cluster_size``
(including 1 or 2), or a day where HDBSCAN finds no cluster at all, form one cluster
``0`` (a note says so); zero points give empty arrays. No Dagster here.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, field

import hdbscan
import numpy as np
import polars as pl

from style_pipeline.contracts.curation import ClusterConfig
from style_pipeline.curation.knn import KnnGraph, knn_graph, pca_apply, pca_fit


@dataclass
class ClusterResult:
    """Per-point labels, HDBSCAN membership strength, GLOSH outlier score; medoid per label."""

    labels: np.ndarray
    probabilities: np.ndarray
    outlier_scores: np.ndarray
    knn: KnnGraph
    medoids: dict[int, int]
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage

    @property
    def n_clusters(self) -> int:
        return len(self.medoids)

    @property
    def n_outliers(self) -> int:
        return int((self.labels < 0).sum())

    def is_medoid(self) -> np.ndarray:
        flags = np.zeros(len(self.labels), dtype=bool)
        flags[list(self.medoids.values())] = True
        return flags


def medoids(x: np.ndarray, labels: np.ndarray) -> dict[int, int]:
    """Row index of each cluster's cosine medoid (max summed similarity to its members)."""
    out: dict[int, int] = {}
    for label in np.unique(labels[labels >= 0]):
        members = np.flatnonzero(labels == label)
        block = x[members]
        out[int(label)] = int(members[np.argmax(block @ block.sum(axis=0))])
    return out


def hdbscan_fit(z: np.ndarray, config: ClusterConfig) -> tuple[np.ndarray, ...]:
    """Labels, probabilities and GLOSH scores of HDBSCAN on ``z`` (n >= min_cluster_size)."""
    n = z.shape[0]
    min_samples = min(config.min_samples or config.min_cluster_size, n - 1)
    model = hdbscan.HDBSCAN(
        min_cluster_size=config.min_cluster_size,
        min_samples=max(min_samples, 1),
        cluster_selection_method=config.cluster_selection_method,
        cluster_selection_epsilon=config.cluster_selection_epsilon,
        core_dist_n_jobs=config.n_jobs or os.cpu_count() or 1,
    )
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(z.astype(np.float64))
    labels = model.labels_.astype(np.int64)
    probs = np.nan_to_num(model.probabilities_, nan=0.0).astype(np.float32)
    scores = np.nan_to_num(model.outlier_scores_, nan=0.0, posinf=1.0).astype(np.float32)
    return labels, probs, np.clip(scores, 0.0, 1.0)


def cluster_embeddings(x: np.ndarray, config: ClusterConfig | None = None) -> ClusterResult:
    """Cluster unit embeddings ``x`` (n, d): graph on full vectors, HDBSCAN on PCA ones."""
    config = config or ClusterConfig()
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (n, dim), got shape {x.shape}")
    n = x.shape[0]
    clock = _Clock()
    reduced = None
    if n >= config.min_cluster_size:
        ivf_dim = config.knn.ivf_dim
        ivf = n > config.knn.exact_max_n and ivf_dim is not None
        dims = max(config.pca_dim, ivf_dim) if ivf and ivf_dim is not None else config.pca_dim
        mean, axes = pca_fit(x, dims, config.knn.pca_sample, config.knn.seed)
        reduced = pca_apply(x, mean, axes)
    clock.lap("pca_s")
    graph = knn_graph(x, config.knn, reduced=reduced)
    clock.lap("knn_s")
    notes = [f"knn: {graph.method}, k={graph.indices.shape[1]}"]
    if reduced is None:
        notes.append(f"n={n} < min_cluster_size={config.min_cluster_size}: one cluster")
        result = _one_cluster(x, graph, np.zeros(n, np.float32), notes)
    else:
        z = np.ascontiguousarray(reduced[:, : config.pca_dim])
        notes.append(f"hdbscan on {z.shape[1]} PCA dims")
        labels, probs, scores = hdbscan_fit(z, config)
        clock.lap("hdbscan_s")
        if (labels < 0).all():
            notes.append("hdbscan found no cluster (all noise): one cluster")
            result = _one_cluster(x, graph, scores, notes)
        else:
            result = ClusterResult(labels, probs, scores, graph, medoids(x, labels), notes)
    clock.lap("medoids_s")
    result.timings = clock.laps
    return result


class _Clock:
    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 4)
        self._last = now


def _one_cluster(x: np.ndarray, graph: KnnGraph, scores: np.ndarray, notes: list[str]):
    labels = np.zeros(x.shape[0], dtype=np.int64)
    ones = np.ones(x.shape[0], np.float32)
    return ClusterResult(labels, ones, scores, graph, medoids(x, labels), notes)


def clusters_frame(frame_ids: list[str], result: ClusterResult) -> pl.DataFrame:
    """The ``clusters`` table: label, membership, GLOSH score, medoid flag, neighbours."""
    n, k = result.knn.indices.shape
    if len(frame_ids) != n:
        raise ValueError(f"{len(frame_ids)} frame ids for {n} clustered points")
    ids = np.asarray([*frame_ids, None], dtype=object)
    neighbour_ids = ids[result.knn.indices.ravel()]  # -1 picks the trailing None
    return pl.DataFrame(
        {
            "frame_id": pl.Series(frame_ids, dtype=pl.String),
            "cluster": pl.Series(result.labels, dtype=pl.Int64),
            "is_outlier": pl.Series(result.labels < 0, dtype=pl.Boolean),
            "membership": pl.Series(result.probabilities, dtype=pl.Float32),
            "outlier_score": pl.Series(result.outlier_scores, dtype=pl.Float32),
            "is_medoid": pl.Series(result.is_medoid(), dtype=pl.Boolean),
            "neighbor_ids": pl.Series(neighbour_ids, dtype=pl.String).reshape((n, k)),
            "neighbor_sims": pl.Series(result.knn.sims.ravel(), dtype=pl.Float32).reshape((n, k)),
        }
    )


def knn_from_frame(table: pl.DataFrame) -> KnnGraph:
    """Rebuild the :class:`KnnGraph` of a ``clusters`` table (rows in table order)."""
    position = {fid: i for i, fid in enumerate(table["frame_id"].to_list())}
    n = table.height
    k = 0
    if n:
        ids_dtype = table.schema["neighbor_ids"]
        if not isinstance(ids_dtype, pl.Array):
            raise TypeError(f"neighbor_ids must be a fixed-size array column, got {ids_dtype}")
        k = ids_dtype.size
    ids = table["neighbor_ids"].to_numpy().reshape(n, k) if n else np.zeros((0, 0), object)
    idx = np.array([[position.get(v, -1) for v in row] for row in ids], dtype=np.int64)
    sims = table["neighbor_sims"].to_numpy().reshape(n, k) if n else np.zeros((0, 0))
    return KnnGraph(idx.reshape(n, k), np.asarray(sims, dtype=np.float32), "from-table")
