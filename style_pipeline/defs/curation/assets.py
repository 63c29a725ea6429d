"""Curation group: quality gate, dedup, ontology, CLIP embeddings, clusters, selection."""

import hashlib
import time

import dagster as dg
import numpy as np
import polars as pl

from style_pipeline.contracts.curation import Ontology
from style_pipeline.curation import steps
from style_pipeline.curation.embeddings import embed_texts
from style_pipeline.curation.ontology import build_label_bank, load_ontology, zero_shot_by_category
from style_pipeline.curation.overrides import overrides_for_partition
from style_pipeline.defs.metadata import counts_by, sample_table
from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.resources import SettingsResource, StorageResource
from style_pipeline.models.registry import load_model
from style_pipeline.paths import resolve_local, resolve_root
from style_pipeline.storage.store import Store

CURATION = dict(partitions_def=DAILY_PARTITIONS, group_name="curation", code_version="1")


def _elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)


@dg.asset(
    **CURATION,
    kinds={"opencv", "parquet"},
    check_specs=[dg.AssetCheckSpec("gate_pass_rate", asset="quality_scores")],
)
def quality_scores(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
):
    """Sharpness, exposure, noise, colour, SSIM redundancy, faces and IQA per frame; gate."""
    started = time.perf_counter()
    cfg = settings.load().curation
    table = steps.score_partition(frames, storage.store(), cfg.quality)
    reasons = table.select(pl.col("reasons").explode()).drop_nulls()
    availability = steps.quality_availability(cfg.quality)
    for name, status in availability.items():
        if status in ("unavailable", "disabled"):
            context.log.warning(f"{name} is {status}: its column is null")
    rate = steps.pass_rate(table)
    yield dg.Output(
        table,
        metadata={
            "frames": len(table),
            "passed": int(table["passed"].sum() or 0),
            "pass_rate": round(rate, 4),
            "fail_reasons": counts_by(reasons, "reasons"),
            **{f"scorer_{k}": v for k, v in availability.items()},
            "seconds": _elapsed(started),
            "sample": sample_table(
                table, ["frame_id", "sharpness", "mean_luminance", "noise_sigma", "passed"]
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="gate_pass_rate",
        passed=bool(len(table) == 0 or rate >= cfg.min_pass_rate),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"pass_rate": round(rate, 4), "min_pass_rate": cfg.min_pass_rate},
    )


@dg.asset(
    **CURATION,
    kinds={"imagehash", "parquet"},
    check_specs=[dg.AssetCheckSpec("duplicate_rate", asset="dedup_set")],
)
def dedup_set(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
    quality_scores: pl.DataFrame,
):
    """pHash/dHash near-duplicate groups within the day and against earlier kept frames."""
    started = time.perf_counter()
    cfg = settings.load().curation
    table = steps.dedup_day(
        frames, quality_scores, storage.store(), context.partition_key, cfg.dedup
    )
    dups = table.filter(pl.col("is_duplicate"))
    earlier = dups.filter(pl.col("duplicate_partition") != context.partition_key)
    rate = steps.duplicate_rate(table)
    yield dg.Output(
        table,
        metadata={
            "frames": len(table),
            "groups": table["group_id"].n_unique() if len(table) else 0,
            "duplicates": len(dups),
            "duplicates_of_earlier_days": len(earlier),
            "duplicate_rate": round(rate, 4),
            "seconds": _elapsed(started),
            "sample": sample_table(dups, ["frame_id", "duplicate_of", "distance"]),
        },
    )
    yield dg.AssetCheckResult(
        check_name="duplicate_rate",
        passed=bool(rate <= cfg.max_duplicate_rate),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"duplicate_rate": round(rate, 4), "max": cfg.max_duplicate_rate},
    )


@dg.asset(**CURATION, kinds={"json"}, io_manager_key="json_io_manager")
def ontology(context: dg.AssetExecutionContext, settings: SettingsResource) -> dg.Output[dict]:
    """The controlled vocabulary in force that day (validated ontology.json snapshot)."""
    path = resolve_local(settings.load().curation.ontology_path)
    model = load_ontology(path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    return dg.Output(
        {
            "path": str(path),
            "sha256": sha256,
            "ontology": model.model_dump(mode="json"),
        },
        metadata={
            "categories": len(model.categories),
            "terms": len(model.terms()),
            "sha256": sha256,
        },
    )


@dg.asset(**CURATION, kinds={"pytorch", "parquet"})
def embeddings(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """OpenCLIP image embeddings (float32, unit length), cached by content and model."""
    started = time.perf_counter()
    cfg = settings.load().curation
    table, facts = steps.embed_partition(frames, storage.store(), cfg.clip, cfg.embeddings)
    if facts["fallback_reason"]:
        context.log.warning(f"CLIP FELL BACK TO THE TINY MODEL: {facts['fallback_reason']}")
    return dg.Output(table, metadata={**facts, "frames": len(table), "seconds": _elapsed(started)})


@dg.asset(**CURATION, kinds={"faiss", "parquet"})
def clusters(
    context: dg.AssetExecutionContext, settings: SettingsResource, embeddings: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """faiss k-NN graph and HDBSCAN clusters with GLOSH outlier scores and medoids."""
    started = time.perf_counter()
    table, result = steps.cluster_partition(embeddings, settings.load().curation.clusters)
    for note in result.notes:
        context.log.info(note)
    return dg.Output(
        table,
        metadata={
            "frames": len(table),
            "clusters": result.n_clusters,
            "outliers": result.n_outliers,
            "knn_method": result.knn.method,
            "timings": result.timings,
            "notes": "; ".join(result.notes),
            "seconds": _elapsed(started),
        },
    )


@dg.asset(
    **CURATION,
    kinds={"python", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "min_curated_count",
            asset="curated_frames",
            blocking=True,
            description="enough frames kept to train on; blocks training when it fails",
        )
    ],
)
def curated_frames(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
    quality_scores: pl.DataFrame,
    dedup_set: pl.DataFrame,
    embeddings: pl.DataFrame,
    clusters: pl.DataFrame,
    ontology: dict,
):
    """The day's diverse, high-quality selection: keep/drop and a reason for every frame."""
    started = time.perf_counter()
    cfg = settings.load().curation
    overrides = overrides_for_partition(
        Store(resolve_root(cfg.overrides_root)), context.partition_key, prefix=""
    )
    label_fn = _label_fn(cfg.clip, Ontology.model_validate(ontology["ontology"]), embeddings)
    table, result = steps.curate_partition(
        frames, quality_scores, dedup_set, embeddings, clusters, cfg.selection, overrides, label_fn
    )
    for note in result.notes:
        context.log.info(note)
    if result.unknown_override_ids:
        context.log.warning(f"override ids not in this partition: {result.unknown_override_ids}")
    kept = int(table["keep"].sum() or 0)
    yield dg.Output(
        table,
        metadata={
            "frames": len(table),
            "kept": kept,
            "budget": cfg.selection.budget,
            "decisions": counts_by(table, "code"),
            "coverage": float(result.coverage) if result.coverage is not None else 0.0,
            "lock_in": len(overrides.lock_in),
            "exclude": len(overrides.exclude),
            "seconds": _elapsed(started),
            "sample": sample_table(table, ["frame_id", "keep", "reason"]),
        },
    )
    yield dg.AssetCheckResult(
        check_name="min_curated_count",
        passed=bool(kept >= cfg.min_curated_per_day),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"kept": kept, "minimum": cfg.min_curated_per_day},
    )


def _label_fn(model_cfg, ontology_model: Ontology, embeddings: pl.DataFrame):
    """Zero-shot ontology labels with the same CLIP model that embedded the frames."""

    def label(vectors: np.ndarray):
        loaded = load_model(model_cfg)
        if len(embeddings) and embeddings["model_id"][0] != loaded.model_id:
            raise ValueError(
                f"embeddings were made with {embeddings['model_id'][0]}, "
                f"labels would use {loaded.model_id}: re-materialize embeddings"
            )
        bank = build_label_bank(ontology_model, lambda texts: embed_texts(loaded, texts))
        return zero_shot_by_category(vectors, bank, ontology_model)

    return label
