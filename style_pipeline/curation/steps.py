"""Partition-level curation steps: polars tables in, polars tables out (no Dagster).

The Dagster assets in ``style_pipeline/defs/curation`` call these with the upstream
tables and the storage root; everything here is testable with a local ``Store``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from style_pipeline.contracts.curation import (
    ClusterConfig,
    DedupConfig,
    EmbeddingConfig,
    Overrides,
    QualityConfig,
    QualityRecord,
    SelectionConfig,
)
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.clustering import (
    ClusterResult,
    cluster_embeddings,
    clusters_frame,
    knn_from_frame,
)
from style_pipeline.curation.dedup import HashedFrame, dedup_partition
from style_pipeline.curation.embeddings import (
    EmbeddingCache,
    ImageRef,
    embed_refs,
    embeddings_frame,
    vectors_from_frame,
)
from style_pipeline.curation.faces import FaceDetector
from style_pipeline.curation.hashing import hash_files
from style_pipeline.curation.iqa import IqaScorer, iqa_status
from style_pipeline.curation.quality import FrameInput, score_frames
from style_pipeline.curation.selection import (
    SelectionResult,
    decisions_frame,
    ineligibility_reasons,
    select_frames,
)
from style_pipeline.models.registry import load_model
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema

QUALITY_SCHEMA = polars_schema(QualityRecord)


def score_partition(frames: pl.DataFrame, store: Store, config: QualityConfig) -> pl.DataFrame:
    """``quality_scores`` rows for every frame (input order), metrics plus gate result."""
    if frames.is_empty():
        return pl.DataFrame(schema=QUALITY_SCHEMA)
    rows = frames.select("frame_id", "media_id", "timestamp_s", "path").to_dicts()
    with store.local_copies([r["path"] for r in rows]) as local:
        inputs = [
            FrameInput(r["frame_id"], local[r["path"]], r["media_id"], r["timestamp_s"])
            for r in rows
        ]
        records = score_frames(inputs, config, FaceDetector(config.faces), IqaScorer(config.iqa))
    return pl.DataFrame([r.model_dump() for r in records], schema=QUALITY_SCHEMA)


def quality_availability(config: QualityConfig) -> dict[str, str]:
    """Which optional scorers ran: ``{"faces": backend, "brisque": ..., "clip_iqa": ...}``."""
    return {"faces": FaceDetector(config.faces).backend, **iqa_status(config.iqa)}


def dedup_day(
    frames: pl.DataFrame,
    quality: pl.DataFrame,
    store: Store,
    partition: str,
    config: DedupConfig,
) -> pl.DataFrame:
    """``dedup_set`` rows: hashes, groups and duplicates within the day and vs earlier days.

    The representative of a group is its best-quality frame (``quality_scores.score``).
    """
    rows = frames.select("frame_id", "path").to_dicts()
    with store.local_copies([r["path"] for r in rows]) as local:
        hashes = hash_files([local[r["path"]] for r in rows])
    hashed = [
        HashedFrame(r["frame_id"], h.phash, h.dhash) for r, h in zip(rows, hashes, strict=True)
    ]
    score = dict(zip(quality["frame_id"], quality["score"], strict=True)) if len(quality) else {}
    return dedup_partition(store, partition, hashed, config, score)


def embed_partition(
    frames: pl.DataFrame, store: Store, model: ModelConfig, config: EmbeddingConfig
) -> tuple[pl.DataFrame, dict]:
    """``embeddings`` rows (cached by frame sha256 and model id) and facts for metadata."""
    loaded = load_model(model)
    refs = [ImageRef(sha, key) for sha, key in zip(frames["sha256"], frames["path"], strict=True)]
    cache = EmbeddingCache(store, loaded.model_id, loaded.dim, prefix=config.cache_prefix)
    result = embed_refs(loaded, refs, store, cache, config.batch_size)
    table = embeddings_frame(frames["frame_id"].to_list(), refs, result.vectors, loaded)
    facts = {**loaded.metadata(), "computed": result.n_computed, "cached": result.n_cached}
    return table, facts


def cluster_partition(
    embeddings: pl.DataFrame, config: ClusterConfig
) -> tuple[pl.DataFrame, ClusterResult]:
    """``clusters`` rows: HDBSCAN labels, membership, GLOSH scores, medoids, neighbours."""
    result = cluster_embeddings(vectors_from_frame(embeddings), config)
    return clusters_frame(embeddings["frame_id"].to_list(), result), result


CURATED_EXTRA = {
    "path": pl.String(),
    "media_id": pl.String(),
    "labels": pl.List(
        pl.Struct({"category": pl.String(), "term": pl.String(), "score": pl.Float64()})
    ),
}


def curate_partition(
    frames: pl.DataFrame,
    quality: pl.DataFrame,
    dedup: pl.DataFrame,
    embeddings: pl.DataFrame,
    clusters: pl.DataFrame,
    config: SelectionConfig,
    overrides: Overrides,
    label_fn: Callable[[np.ndarray], list[dict[str, list[tuple[str, float]]]]] | None = None,
) -> tuple[pl.DataFrame, SelectionResult]:
    """``curated_frames``: a keep/drop decision with a reason for every frame of the day.

    Eligible = passed the quality gate and not a duplicate; the selection then trades
    quality for coverage under the budget; ``overrides`` lock frames in or out.
    ``label_fn`` maps unit image embeddings to ontology labels per category.
    """
    ids = frames["frame_id"].to_list()
    q = _aligned(quality, ids, ["passed", "reasons", "score"])
    d = _aligned(dedup, ids, ["duplicate_of"])
    e = _aligned(embeddings, ids, ["embedding"])
    c = _aligned(clusters, ids, ["cluster", "outlier_score"])
    ineligible = ineligibility_reasons(
        ids, q["passed"].to_list(), q["reasons"].to_list(), d["duplicate_of"].to_list()
    )
    vectors = vectors_from_frame(e)
    result = select_frames(
        ids,
        q["score"].to_numpy().astype(np.float64),
        vectors,
        c["cluster"].to_numpy(),
        config,
        ineligible=ineligible,
        outlier_scores=c["outlier_score"].to_numpy().astype(np.float64),
        overrides=overrides,
        knn=knn_from_frame(_aligned(clusters, ids, list(clusters.columns))) if ids else None,
    )
    table = decisions_frame(result)
    labels = label_fn(vectors) if (label_fn is not None and ids) else [{} for _ in ids]
    flat = [
        [
            {"category": cat, "term": t, "score": float(sc)}
            for cat, terms in x.items()
            for t, sc in terms
        ]
        for x in labels
    ]
    table = table.with_columns(
        pl.Series("path", frames["path"].to_list(), dtype=pl.String),
        pl.Series("media_id", frames["media_id"].to_list(), dtype=pl.String),
        pl.Series("labels", flat, dtype=CURATED_EXTRA["labels"]),
    )
    return table, result


def _aligned(table: pl.DataFrame, ids: list[str], columns: list[str]) -> pl.DataFrame:
    """``table``'s ``columns`` in the order of ``ids``; a frame missing upstream is an error."""
    missing = set(ids) - set(table["frame_id"].to_list())
    if missing:
        raise ValueError(f"{len(missing)} frame(s) missing upstream, e.g. {sorted(missing)[0]}")
    if table["frame_id"].n_unique() != len(table):
        raise ValueError("frame ids are not unique in an upstream table")
    cols = ["frame_id", *[c for c in columns if c != "frame_id"]]
    order = pl.DataFrame({"frame_id": pl.Series(ids, dtype=pl.String)})
    return order.join(table.select(cols), on="frame_id", how="left", maintain_order="left")


def duplicate_rate(dedup: pl.DataFrame) -> float:
    return float(dedup["is_duplicate"].mean()) if len(dedup) else 0.0


def pass_rate(quality: pl.DataFrame) -> float:
    return float(quality["passed"].mean()) if len(quality) else 0.0
