"""LLM group: ``aligned_pairs`` (chat messages -> the speech that answers them) and
``sft_dataset`` (the accepted pairs as deduplicated chat-format JSONL splits).

Wiring and reporting only: the stages are imported inside each asset, so loading the code
location imports neither torch nor transformers.
"""

import time
from typing import Any

import dagster as dg
import polars as pl

from style_pipeline.defs.metadata import sample_table, table_metadata
from style_pipeline.defs.ownership import group_options
from style_pipeline.defs.partitions import DAILY_PARTITIONS, MAY_BE_MISSING
from style_pipeline.defs.resources import SettingsResource, StorageResource
from style_pipeline.settings import load_settings

LLM = group_options("llm")
# Read when the code location loads: the window is part of the asset graph.
SFT_WINDOW = load_settings().sft.window_days
PAIR_COLUMNS = ["segment_id", "status", "reason", "score", "prompt", "response"]


def _elapsed(started: float) -> float:
    return round(time.perf_counter() - started, 3)


@dg.asset(
    **LLM,
    kinds={"pytorch", "parquet"},
    ins={
        "transcripts": dg.AssetIn(metadata=MAY_BE_MISSING),
        "chat_events": dg.AssetIn(metadata=MAY_BE_MISSING),
    },
    check_specs=[
        dg.AssetCheckSpec(
            "rejects_have_reasons",
            asset="aligned_pairs",
            partitions_def=DAILY_PARTITIONS,
            description="every rejected pair names a known reason code and every accepted "
            "pair has a prompt and a chat span",
        )
    ],
)
def aligned_pairs(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    transcripts: pl.DataFrame | None,
    chat_events: pl.DataFrame | None,
):
    """One row per speech segment: the chat it answers (prompt), its text (response), score."""
    from style_pipeline.contracts.alignment import PAIR_REASONS
    from style_pipeline.stages.aligned_pairs import align_partition

    started = time.perf_counter()
    cfg = settings.load().alignment
    table, facts = align_partition(transcripts, chat_events, cfg)
    if reason := facts.encoder.get("encoder_fallback_reason"):
        context.log.warning(f"sentence encoder fell back: {reason}")
    if facts.embedding != "used":
        context.log.info(f"embedding part: {facts.embedding}")
    yield dg.Output(
        table,
        metadata={
            **table_metadata(table),
            **facts.encoder,
            "segments": facts.segments,
            "chat_messages": facts.messages,
            "accepted": facts.accepted,
            "candidates": facts.candidates,
            "rejected": facts.reasons,
            "embedding": facts.embedding,
            "segments_per_s": round(facts.segments_per_s, 1),
            "config_hash": cfg.fingerprint(),
            "seconds": _elapsed(started),
            "sample": sample_table(table, PAIR_COLUMNS),
        },
    )
    rejected = table.filter(pl.col("status") == "rejected")
    unknown = sorted(set(rejected["reason"].to_list()) - set(PAIR_REASONS))
    accepted = table.filter(pl.col("status") == "accepted")
    incomplete = accepted.filter((pl.col("prompt") == "") | pl.col("chat_start_ms").is_null())
    yield dg.AssetCheckResult(
        check_name="rejects_have_reasons",
        passed=not unknown and incomplete.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"unknown_reasons": ", ".join(unknown), "incomplete_accepted": incomplete.height},
    )


@dg.asset(
    **LLM,
    kinds={"json"},
    io_manager_key="json_io_manager",
    ins={
        "aligned_pairs": dg.AssetIn(
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-(SFT_WINDOW - 1)),
            metadata=MAY_BE_MISSING,
        )
    },
    check_specs=[
        dg.AssetCheckSpec(
            "no_split_leakage",
            asset="sft_dataset",
            partitions_def=DAILY_PARTITIONS,
            blocking=True,
            description="no source video has pairs in two splits (train/val/test)",
        )
    ],
)
def sft_dataset(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    aligned_pairs: Any,  # dict[str, pl.DataFrame]; one DataFrame when the window is one day
):
    """Deduplicated, filtered chat-format JSONL (train/val/test by source video), snapshot id."""
    # Days of the window without aligned pairs are left out (the IO manager logs each one).
    from style_pipeline.stages.sft_dataset import build_sft_dataset

    started = time.perf_counter()
    cfg = settings.load().sft
    document, facts = build_sft_dataset(
        window_tables(context, aligned_pairs), storage.store(), context.partition_key, cfg
    )
    rows = facts.rows
    yield dg.Output(
        document,
        metadata={
            "snapshot_id": document.snapshot_id,
            "prefix": document.prefix,
            "pairs_in": document.pairs_in,
            "window_days": SFT_WINDOW,
            "partitions": ", ".join(document.partitions),
            "kept": facts.kept,
            "counts": document.counts,
            "videos": document.videos,
            "rejected": document.rejected,
            "seconds": _elapsed(started),
            "sample": sample_table(rows, ["split", "status", "reason", "prompt", "response"]),
        },
    )
    kept = rows.filter(pl.col("status") == "kept")
    straddling = kept.group_by("media_id").agg(pl.col("split").n_unique().alias("n"))
    leaks = straddling.filter(pl.col("n") > 1)
    yield dg.AssetCheckResult(
        check_name="no_split_leakage",
        passed=leaks.is_empty(),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"videos_in_two_splits": leaks.height, "videos": kept["media_id"].n_unique()},
    )


def window_tables(context: dg.AssetExecutionContext, tables: Any) -> dict[str, pl.DataFrame]:
    """The window's ``aligned_pairs`` by day: Dagster hands a multi-day input over as a
    dict, a one-day window as the bare table (or None when that day was never made)."""
    if isinstance(tables, dict):
        return tables
    if tables is None:
        return {}
    if isinstance(tables, pl.DataFrame):
        (key,) = context.asset_partition_keys_for_input("aligned_pairs")
        return {key: tables}
    raise TypeError(f"aligned_pairs: expected a table or tables by day, got {type(tables)}")
