"""Ingest group: ``raw_media`` (validated, checksummed, stored media) and ``frames``."""

import datetime as dt
import time

import dagster as dg
import polars as pl

from style_pipeline.contracts import FrameRecord, RawMediaRecord
from style_pipeline.defs.metadata import counts_by, sample_table
from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.resources import DropFolderResource, SettingsResource, StorageResource
from style_pipeline.media.dropfolder import scan_drop
from style_pipeline.media.extract import extract_partition
from style_pipeline.media.ingest import ingest_entries
from style_pipeline.storage.tables import records_to_frame


@dg.asset(
    partitions_def=DAILY_PARTITIONS,
    group_name="ingest",
    kinds={"python", "parquet"},
    code_version="1",
)
def raw_media(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    drop_folder: DropFolderResource,
) -> dg.Output[pl.DataFrame]:
    """Files dropped on this date: validated, checksummed, stored content-addressed."""
    day = dt.date.fromisoformat(context.partition_key)
    started = time.perf_counter()
    root = drop_folder.root()
    entries = [e for e in scan_drop(root) if e.arrival_date == day]
    records = ingest_entries(entries, root, day, storage.store(), settings.load().ingest)
    table = records_to_frame(records, RawMediaRecord)
    rejected = table.filter(pl.col("status") == "rejected")
    for row in rejected.iter_rows(named=True):
        context.log.warning(
            f"rejected {row['source_name']!r}: {row['reject_reason']} ({row['reject_detail']})"
        )
    return dg.Output(
        table,
        metadata={
            "files": len(table),
            "accepted": len(table) - len(rejected),
            "rejected": len(rejected),
            "rejects_by_reason": counts_by(rejected, "reject_reason"),
            "accepted_by_kind": counts_by(table.filter(pl.col("status") == "accepted"), "kind"),
            "bytes_accepted": int(
                table.filter(pl.col("status") == "accepted")["size_bytes"].sum() or 0
            ),
            "drop_folder": str(root),
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(
                table, ["source_name", "kind", "status", "reject_reason", "width", "height"]
            ),
        },
    )


@dg.asset(
    partitions_def=DAILY_PARTITIONS,
    group_name="ingest",
    kinds={"ffmpeg", "parquet"},
    code_version="1",
)
def frames(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    raw_media: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Frames extracted from the day's videos plus standardized stills, saved as JPEG."""
    started = time.perf_counter()
    frame_settings = settings.load().frames
    accepted = raw_media.filter(pl.col("status") == "accepted").to_dicts()
    result = extract_partition(accepted, storage.store(), context.partition_key, frame_settings)
    for failure in result.failures:
        context.log.warning(
            f"no frames from {failure.source_name!r}: {failure.reason} ({failure.detail})"
        )
    table = records_to_frame(result.frames, FrameRecord)
    return dg.Output(
        table,
        metadata={
            "frames": len(table),
            "media_in": len(accepted),
            "media_failed": len(result.failures),
            "failures_by_reason": _count(f.reason for f in result.failures),
            "frames_by_mode": counts_by(table, "mode"),
            "mode": frame_settings.mode,
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(
                table, ["source_name", "timestamp_s", "width", "height", "path"]
            ),
        },
    )


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return out
