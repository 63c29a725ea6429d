"""The ``clusters`` stage: k-NN graph and HDBSCAN clusters of the day's embeddings.

faiss neighbours, PCA, HDBSCAN labels with membership strength, GLOSH outlier scores and
one medoid per cluster (``curation/clustering.py``), as one row per frame.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import polars as pl

from style_pipeline.contracts.curation import ClusterConfig
from style_pipeline.curation.clustering import cluster_embeddings, clusters_frame
from style_pipeline.curation.embeddings import vectors_from_frame


@dataclass(frozen=True)
class ClusterFacts:
    """What the ``clusters`` asset reports besides the table."""

    clusters: int
    outliers: int
    knn_method: str
    timings: Mapping[str, float]  # seconds per step
    notes: tuple[str, ...]  # fallbacks and small-day decisions, for the run log


def cluster_partition(
    embeddings: pl.DataFrame, config: ClusterConfig
) -> tuple[pl.DataFrame, ClusterFacts]:
    """``clusters`` rows: HDBSCAN labels, membership, GLOSH scores, medoids, neighbours."""
    result = cluster_embeddings(vectors_from_frame(embeddings), config)
    facts = ClusterFacts(
        clusters=result.n_clusters,
        outliers=result.n_outliers,
        knn_method=result.knn.method,
        timings=result.timings,
        notes=tuple(result.notes),
    )
    return clusters_frame(embeddings["frame_id"].to_list(), result), facts
