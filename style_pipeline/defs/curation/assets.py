"""Curation group: quality gate, dedup, ontology, CLIP embeddings, clusters, selection.

Wiring and reporting only: each asset calls its stage in ``stages/`` and turns the
stage's facts into metadata, log lines and check results.

Stages are imported inside each asset: loading the code location (the webserver,
the daemon, every step's subprocess) then imports no model library, and a step pays
only for the libraries of its own stage.
"""

import time

import dagster as dg
import polars as pl

from style_pipeline.contracts.curation import OntologySnapshot
from style_pipeline.defs.metadata import (
    counts_by,
    frame_strip_metadata,
    sample_table,
    table_metadata,
)
from style_pipeline.defs.ownership import group_options
from style_pipeline.defs.partitions import DAILY_PARTITIONS, MAY_BE_MISSING
from style_pipeline.defs.resources import SettingsResource, StorageResource
from style_pipeline.paths import resolve_root
from style_pipeline.storage.store import Store

CURATION = group_options("curation")


def _elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def coverage_markdown(coverage: dict[str, dict[str, int]], low: dict[str, str]) -> str:
    """One row per axis: each value with its count, and the low-coverage prompt."""
    lines = ["| axis | values (frames chosen) | low coverage |", "|---|---|---|"]
    for axis, counts in coverage.items():
        values = ", ".join(f"{v} {n}" for v, n in counts.items())
        lines.append(f"| {axis} | {values} | {low.get(axis, '').replace('|', '/')} |")
    return "\n".join(lines)


@dg.asset(
    **CURATION,
    kinds={"opencv", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "gate_pass_rate",
            asset="quality_scores",
            partitions_def=DAILY_PARTITIONS,
            description="share of the day's frames that pass the quality gate is at least "
            "curation.min_pass_rate (warns only; an empty day passes)",
        )
    ],
)
def quality_scores(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
):
    """Sharpness, exposure, noise, colour, SSIM redundancy, faces and IQA per frame; gate."""
    from style_pipeline.stages.quality_scores import score_partition

    started = time.perf_counter()
    cfg = settings.load().curation
    table, facts = score_partition(frames, storage.store(), cfg.quality, log=context.log.info)
    reasons = table.select(pl.col("reasons").explode()).drop_nulls()
    for name, status in facts.scorers.items():
        if status in ("unavailable", "disabled"):
            context.log.warning(f"{name} is {status}: its column is null")
    yield dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "frames": facts.frames,
            "passed": facts.passed,
            "pass_rate": round(facts.pass_rate, 4),
            "fail_reasons": counts_by(reasons, "reasons"),
            **{f"scorer_{k}": v for k, v in facts.scorers.items()},
            "seconds": _elapsed(started),
            "sample": sample_table(
                table, ["frame_id", "sharpness", "mean_luminance", "noise_sigma", "passed"]
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="gate_pass_rate",
        passed=bool(facts.frames == 0 or facts.pass_rate >= cfg.min_pass_rate),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"pass_rate": round(facts.pass_rate, 4), "min_pass_rate": cfg.min_pass_rate},
    )


@dg.asset(
    **CURATION,
    kinds={"imagehash", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "duplicate_rate",
            asset="dedup_set",
            partitions_def=DAILY_PARTITIONS,
            description="share of the day's frames that are near-duplicates (within the day "
            "or of earlier kept frames) is at most curation.max_duplicate_rate (warns only)",
        )
    ],
)
def dedup_set(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
    quality_scores: pl.DataFrame,
):
    """pHash/dHash near-duplicate groups within the day and against earlier kept frames."""
    from style_pipeline.stages.dedup_set import dedup_day

    started = time.perf_counter()
    cfg = settings.load().curation
    table, facts = dedup_day(
        frames, quality_scores, storage.store(), context.partition_key, cfg.dedup,
        log=context.log.info,
    )  # fmt: skip
    rate = facts.duplicate_rate
    yield dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "frames": facts.frames,
            "groups": facts.groups,
            "duplicates": facts.duplicates,
            "duplicates_of_earlier_days": facts.duplicates_of_earlier_days,
            "duplicate_rate": round(rate, 4),
            "seconds": _elapsed(started),
            "sample": sample_table(
                table.filter(pl.col("is_duplicate")), ["frame_id", "duplicate_of", "distance"]
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="duplicate_rate",
        passed=bool(rate <= cfg.max_duplicate_rate),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"duplicate_rate": round(rate, 4), "max": cfg.max_duplicate_rate},
    )


@dg.asset(**CURATION, kinds={"json"}, io_manager_key="json_io_manager")
def ontology(
    context: dg.AssetExecutionContext, settings: SettingsResource
) -> dg.Output[OntologySnapshot]:
    """The controlled vocabulary in force that day (validated ontology.json snapshot)."""
    from style_pipeline.stages.ontology import snapshot_ontology

    snapshot, facts = snapshot_ontology(settings.load().curation)
    return dg.Output(
        snapshot,
        metadata={"categories": facts.categories, "terms": facts.terms, "sha256": facts.sha256},
    )


@dg.asset(**CURATION, kinds={"pytorch", "parquet"})
def embeddings(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """OpenCLIP image embeddings (float32, unit length), cached by content and model."""
    from style_pipeline.stages.embeddings import embed_partition

    started = time.perf_counter()
    cfg = settings.load().curation
    table, facts = embed_partition(frames, storage.store(), cfg.clip, cfg.embeddings)
    if facts.fallback_reason:
        context.log.warning(f"CLIP FELL BACK TO THE TINY MODEL: {facts.fallback_reason}")
    for key in facts.unreadable:
        context.log.warning(f"unreadable embedding cache entry {key}: recomputed and rewritten")
    metadata = {
        **facts.model,
        **facts.loading,
        "computed": facts.computed,
        "cached": facts.cached,
        "cache_rewritten": len(facts.unreadable),
    }
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            **metadata,
            "frames": len(table),
            "seconds": _elapsed(started),
        },
    )


@dg.asset(**CURATION, kinds={"faiss", "parquet"})
def clusters(
    context: dg.AssetExecutionContext, settings: SettingsResource, embeddings: pl.DataFrame
) -> dg.Output[pl.DataFrame]:
    """faiss k-NN graph and HDBSCAN clusters with GLOSH outlier scores and medoids."""
    from style_pipeline.stages.clusters import cluster_partition

    started = time.perf_counter()
    table, facts = cluster_partition(embeddings, settings.load().curation.clusters)
    for note in facts.notes:
        context.log.info(note)
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "frames": len(table),
            "clusters": facts.clusters,
            "outliers": facts.outliers,
            "knn_method": facts.knn_method,
            "timings": dict(facts.timings),
            "notes": "; ".join(facts.notes),
            "seconds": _elapsed(started),
        },
    )


def character_markdown(characters: dict, unknown: dict) -> str:
    """One row per character and unknown group: frames that day, kept, share and limits."""
    lines = ["| character | frames | kept | share | min / max share | limits |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    for name, c in characters.items():
        bounds = f"{c.min_share:g} / {c.max_share:g}"
        state = "met" if c.met else "**missed**"
        if c.min_share == 0 and c.max_share == 1:
            state = "none"
        elif c.dropped_for_share:
            state += f", {c.dropped_for_share} dropped for the cap"
        lines.append(f"| {name} | {c.frames} | {c.kept} | {c.share:.0%} | {bounds} | {state} |")
    for name, c in unknown.items():
        lines.append(f"| {name} | {c.frames} | {c.kept} | {c.share:.0%} | | unknown group |")
    return "\n".join(lines)


@dg.asset(
    **CURATION,
    kinds={"python", "parquet"},
    # the day's faces with their labels: a day never run through characters decides as before
    ins={"characters": dg.AssetIn(metadata=MAY_BE_MISSING)},
    check_specs=[
        dg.AssetCheckSpec(
            "min_curated_count",
            asset="curated_frames",
            blocking=True,
            partitions_def=DAILY_PARTITIONS,
            description="at least curation.min_curated_per_day frames kept that day; "
            "blocks that day's captioning and training when it fails",
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
    scores: pl.DataFrame,
    ranking: pl.DataFrame,
    characters: pl.DataFrame | None,
):
    """The day's selection against the theme and character shares: keep/drop, reason, role."""
    from style_pipeline.curation.character_refs import load_specs
    from style_pipeline.curation.themes import load_theme
    from style_pipeline.paths import resolve_local
    from style_pipeline.stages.curated_frames import DayTables, curate_day

    started = time.perf_counter()
    everything = settings.load()
    cfg = everything.curation
    theme = load_theme(cfg.theme, cfg.themes_dir)
    specs = None
    if not everything.characters.enabled:
        characters = None  # its table is empty then: no face was looked for
    elif characters is not None:
        specs = load_specs(resolve_local(everything.characters.references_dir))
    table, facts = curate_day(
        DayTables(
            frames, quality_scores, dedup_set, embeddings, clusters, scores, ranking, characters
        ),
        OntologySnapshot.model_validate(ontology),
        Store(resolve_root(cfg.overrides_root)),
        context.partition_key,
        cfg,
        theme=theme,
        frame_store=storage.store(),
        character_specs=specs,
    )
    for note in facts.notes:
        context.log.info(note)
    for note in facts.character_notes:
        context.log.warning(f"character share: {note}")
    for axis, prompt in facts.low_coverage.items():
        context.log.info(f"low coverage on {axis}: {prompt}")
    if facts.unknown_override_ids:
        context.log.warning(
            f"override ids not in this partition: {list(facts.unknown_override_ids)}"
        )
    yield dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "frames": facts.frames,
            "kept": facts.kept,
            "budget": cfg.selection.budget,
            "decisions": counts_by(table, "code"),
            "coverage": facts.coverage,
            "lock_in": facts.lock_in,
            "exclude": facts.exclude,
            "theme": f"{theme.name} {theme.version}",
            "roles": facts.roles,
            "axis_coverage": dg.MetadataValue.md(
                coverage_markdown(facts.axis_coverage, facts.low_coverage)
            ),
            "low_coverage": dict(facts.low_coverage),
            "characters": {
                name: {
                    "frames": c.frames,
                    "kept": c.kept,
                    "share": round(c.share, 4),
                    "min_share": c.min_share,
                    "max_share": c.max_share,
                    "met": c.met,
                }
                for name, c in facts.characters.items()
            },
            "unknown_groups": {
                name: {"frames": c.frames, "kept": c.kept}
                for name, c in facts.unknown_groups.items()
            },
            "character_shares": dg.MetadataValue.md(
                character_markdown(facts.characters, facts.unknown_groups)
                if characters is not None
                else "no characters table that day (or characters.enabled is false)"
            ),
            "seconds": _elapsed(started),
            "sample": sample_table(table, ["frame_id", "keep", "role", "reason"]),
            **frame_strip_metadata(
                table, storage.store(), context.partition_key, everything, context.log.warning
            ),
        },
    )
    yield dg.AssetCheckResult(
        check_name="min_curated_count",
        passed=bool(facts.kept >= cfg.min_curated_per_day),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"kept": facts.kept, "minimum": cfg.min_curated_per_day},
    )
