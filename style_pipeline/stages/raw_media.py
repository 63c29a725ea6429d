"""The ``raw_media`` stage: one day of the drop folder, validated and stored content-addressed.

Scans the drop folder, keeps the entries whose arrival date is the partition, and runs
them through ``media.ingest.ingest_entries`` (checks, sha256, probe, duplicates, ledger,
quarantine). The result is one typed row per dropped file, accepted or rejected, plus a
rejected row for every entry the scan skipped (dot files, folders named like media,
unreadable folders), so a user sees why nothing happened to them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from style_pipeline.contracts.ingest import IngestSettings
from style_pipeline.contracts.media import MediaStatus, RawMediaRecord
from style_pipeline.media.dropfolder import scan_drop_all
from style_pipeline.media.ingest import ingest_entries
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame


@dataclass(frozen=True)
class Rejection:
    """A dropped file that was not accepted, with its ``RejectReason`` code."""

    source_name: str
    reason: str
    detail: str | None


@dataclass(frozen=True)
class RawMediaFacts:
    """What the ``raw_media`` asset reports besides the table."""

    drop_folder: Path
    files: int
    bytes_accepted: int
    rejections: tuple[Rejection, ...]

    @property
    def rejected(self) -> int:
        return len(self.rejections)

    @property
    def accepted(self) -> int:
        return self.files - self.rejected


def ingest_partition(
    drop_root: Path, store: Store, partition: str, config: IngestSettings
) -> tuple[pl.DataFrame, RawMediaFacts]:
    """The day's ``raw_media`` table from the drop folder at ``drop_root``, and facts."""
    day = dt.date.fromisoformat(partition)
    scan = scan_drop_all(drop_root)
    entries = [e for e in scan.entries if e.arrival_date == day]
    skipped = [e for e in scan.skipped if e.arrival_date == day]
    records = ingest_entries(entries, drop_root, day, store, config, skipped)
    table = records_to_frame(records, RawMediaRecord)
    accepted = table.filter(pl.col("status") == MediaStatus.ACCEPTED.value)
    rejected = table.filter(pl.col("status") == MediaStatus.REJECTED.value)
    facts = RawMediaFacts(
        drop_folder=drop_root,
        files=len(table),
        bytes_accepted=int(accepted["size_bytes"].sum() or 0),
        rejections=tuple(
            Rejection(r["source_name"], r["reject_reason"], r["reject_detail"])
            for r in rejected.iter_rows(named=True)
        ),
    )
    return table, facts
