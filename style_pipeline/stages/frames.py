"""The ``frames`` stage: every accepted ``raw_media`` row to stored JPEG frames.

For each accepted row: fetch the stored file, extract video frames or standardize the
still (``media/extract.py``) into a work folder (``media/workdirs.py``; those of killed
runs are removed when the stage starts), upload each JPEG to
``layout.frame_key(partition, frame_id)`` and describe it with a ``FrameRecord``. A file
that fails to decode becomes an ``ExtractionFailure`` and the others go on; storage
errors are not swallowed. Frame ids are content addresses of (media id, millisecond
timestamp, mode), so a re-run writes the same keys.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.contracts.media import FrameRecord, MediaKind, MediaStatus, RejectReason
from style_pipeline.media.checksum import sha256_file
from style_pipeline.media.errors import without_content
from style_pipeline.media.extract import extract_local, failure_reason
from style_pipeline.media.frames import ExtractedFrame, frame_id
from style_pipeline.media.workdirs import clean_stale_work_dirs, work_dir
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame


@dataclass(frozen=True)
class ExtractionFailure:
    """A media file whose frames could not be extracted; ``reason`` is a RejectReason code."""

    media_id: str
    source_name: str
    reason: str
    detail: str


@dataclass
class ExtractionResult:
    """Frames of a partition, the media that failed, and seconds spent per media id."""

    frames: list[FrameRecord] = field(default_factory=list)
    failures: list[ExtractionFailure] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FramesFacts:
    """What the ``frames`` asset reports besides the table."""

    media_in: int
    failures: tuple[ExtractionFailure, ...]
    mode: str

    @property
    def failures_by_reason(self) -> dict[str, int]:
        """``{reason: count}`` in order of first appearance."""
        return dict(Counter(f.reason for f in self.failures))


def extract_frames(
    raw_media: pl.DataFrame, store: Store, partition: str, config: FrameSettings
) -> tuple[pl.DataFrame, FramesFacts]:
    """The day's ``frames`` table from its accepted ``raw_media`` rows, and facts."""
    accepted = raw_media.filter(pl.col("status") == MediaStatus.ACCEPTED.value).to_dicts()
    result = extract_partition(accepted, store, partition, config)
    table = records_to_frame(result.frames, FrameRecord)
    return table, FramesFacts(len(accepted), tuple(result.failures), config.mode)


def _publish(
    row: Mapping[str, Any],
    kind: MediaKind,
    mode: str,
    frames: list[ExtractedFrame],
    store: Store,
    partition_key: str,
) -> list[FrameRecord]:
    records = []
    for frame in frames:
        fid = frame_id(row["media_id"], frame.timestamp_s, mode)
        key = store.put_file(frame.path, layout.frame_key(partition_key, fid))
        records.append(
            FrameRecord(
                frame_id=fid,
                media_id=row["media_id"],
                source_name=row["source_name"],
                kind=kind,
                mode=mode,
                timestamp_s=round(frame.timestamp_s, 6),
                path=key,
                width=frame.width,
                height=frame.height,
                sha256=sha256_file(frame.path),
                scene_score=frame.scene_score,
            )
        )
    return records


def extract_partition(
    media_rows: list[dict], store: Store, partition_key: str, settings: FrameSettings
) -> ExtractionResult:
    """Extract and upload the frames of every accepted media row of one partition.

    Work folders of runs that were killed (``kill -9``) are removed first.
    """
    clean_stale_work_dirs()
    result = ExtractionResult()
    seen: set[str] = set()
    for row in media_rows:
        media_id, source = row["media_id"], row["source_name"]
        if media_id in seen:
            continue  # the same content twice would write the same frame ids twice
        seen.add(media_id)
        started = time.perf_counter()
        try:
            kind = MediaKind(row["kind"])
        except ValueError:
            kind = MediaKind.UNKNOWN
        if kind not in (MediaKind.VIDEO, MediaKind.IMAGE) or not row.get("object_path"):
            detail = f"kind {row['kind']!r}, object_path {row.get('object_path')!r}"
            result.failures.append(
                ExtractionFailure(media_id, source, RejectReason.UNSUPPORTED_TYPE.value, detail)
            )
            continue
        with (
            store.local_copy(row["object_path"]) as local,
            work_dir("frames_") as tmp,
        ):
            try:
                duration = row.get("duration_s")
                mode, frames = extract_local(kind, Path(local), tmp, settings, duration)
            except Exception as exc:  # one undecodable file must not fail the partition
                reason = failure_reason(exc).value
                # ffmpeg's stderr tail (up to 3000 characters) stays whole
                detail = without_content(f"{type(exc).__name__}: {exc}", limit=4000)
                result.failures.append(ExtractionFailure(media_id, source, reason, detail))
                result.timings[media_id] = time.perf_counter() - started
                continue
            result.frames.extend(_publish(row, kind, mode, frames, store, partition_key))
        result.timings[media_id] = time.perf_counter() - started
    return result
