"""The clusters stage: one row per embedding, typed facts for the asset's metadata."""

from __future__ import annotations

import polars as pl

from style_pipeline.contracts.curation import ClusterConfig
from style_pipeline.stages.clusters import cluster_partition
from style_pipeline_tests.curation.test_clustering import blobs


def embeddings_table(vectors) -> pl.DataFrame:
    """A minimal ``embeddings`` table (frame ids ``f000``...) of unit float32 vectors."""
    return pl.DataFrame(
        {
            "frame_id": [f"f{i:03d}" for i in range(len(vectors))],
            "embedding": pl.Series(vectors, dtype=pl.Array(pl.Float32, vectors.shape[1])),
        }
    )


def test_cluster_partition_rows_and_facts():
    vectors, _ = blobs(12, 3, dim=16)
    table, facts = cluster_partition(embeddings_table(vectors), ClusterConfig())
    assert table["frame_id"].to_list() == [f"f{i:03d}" for i in range(36)]
    assert facts.clusters == table.filter(pl.col("cluster") >= 0)["cluster"].n_unique() == 3
    assert facts.outliers == int((table["cluster"] < 0).sum())
    assert facts.knn_method and any(facts.knn_method in note for note in facts.notes)
    assert all(seconds >= 0 for seconds in facts.timings.values())
