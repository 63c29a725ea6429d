"""Ingest group: ``raw_media`` (validated, checksummed, stored media) and ``frames``.

Wiring and reporting only: the work is in ``stages/raw_media.py`` and ``stages/frames.py``.

Stages are imported inside each asset: loading the code location (the webserver,
the daemon, every step's subprocess) then imports no model library, and a step pays
only for the libraries of its own stage.
"""

import time

import dagster as dg
import polars as pl

from style_pipeline.defs.metadata import counts_by, sample_table, table_metadata
from style_pipeline.defs.ownership import group_options
from style_pipeline.defs.resources import DropFolderResource, SettingsResource, StorageResource

INGEST = group_options("ingest")


@dg.asset(**INGEST, kinds={"python", "parquet"})
def raw_media(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    drop_folder: DropFolderResource,
) -> dg.Output[pl.DataFrame]:
    """Files dropped on this date: validated, checksummed, stored content-addressed."""
    from style_pipeline.stages.raw_media import ingest_partition

    started = time.perf_counter()
    table, facts = ingest_partition(
        drop_folder.root(), storage.store(), context.partition_key, settings.load().ingest
    )
    for r in facts.rejections:
        context.log.warning(f"rejected {r.source_name!r}: {r.reason} ({r.detail})")
    rejected = table.filter(pl.col("status") == "rejected")
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "files": facts.files,
            "accepted": facts.accepted,
            "rejected": facts.rejected,
            "rejects_by_reason": counts_by(rejected, "reject_reason"),
            "accepted_by_kind": counts_by(table.filter(pl.col("status") == "accepted"), "kind"),
            "bytes_accepted": facts.bytes_accepted,
            "drop_folder": str(facts.drop_folder),
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(
                table, ["source_name", "kind", "status", "reject_reason", "width", "height"]
            ),
        },
    )


@dg.asset(**INGEST, kinds={"ffmpeg", "parquet"})
def frames(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    raw_media: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Frames extracted from the day's videos plus standardized stills, saved as JPEG."""
    from style_pipeline.stages.frames import extract_frames

    started = time.perf_counter()
    table, facts = extract_frames(
        raw_media, storage.store(), context.partition_key, settings.load().frames,
        log=context.log.info,
    )  # fmt: skip
    for failure in facts.failures:
        context.log.warning(
            f"no frames from {failure.source_name!r}: {failure.reason} ({failure.detail})"
        )
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "frames": len(table),
            "media_in": facts.media_in,
            "media_failed": len(facts.failures),
            "failures_by_reason": facts.failures_by_reason,
            "frames_by_mode": counts_by(table, "mode"),
            "mode": facts.mode,
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(
                table, ["source_name", "timestamp_s", "width", "height", "path"]
            ),
        },
    )
