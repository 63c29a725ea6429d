"""The ``frames`` stage: every accepted ``raw_media`` row to stored JPEG frames.

For each accepted row: fetch the stored file, extract video frames or standardize the
still (``media/extract.py``) into a work folder (``media/workdirs.py``; those of killed
runs are removed when the stage starts), upload each JPEG to
``layout.frame_key(partition, frame_id)`` and describe it with a ``FrameRecord``. Stills
are standardised by a process pool (``parallel.py``), videos one at a time. A file
that fails to decode becomes an ``ExtractionFailure`` and the others go on; storage
errors are not swallowed. Frame ids are content addresses of (media id, millisecond
timestamp, mode), so a re-run writes the same keys.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.contracts.media import FrameRecord, MediaKind, MediaStatus, RejectReason
from style_pipeline.media.checksum import sha256_file
from style_pipeline.media.errors import without_content
from style_pipeline.media.extract import STILL_MODE, extract_local, failure_reason
from style_pipeline.media.frames import ExtractedFrame, frame_id
from style_pipeline.media.stills import StillJob, standardize_job
from style_pipeline.media.workdirs import clean_stale_work_dirs, work_dir
from style_pipeline.parallel import ItemError, Progress, map_bounded, progress_log
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame

_log = logging.getLogger(__name__)


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
    raw_media: pl.DataFrame,
    store: Store,
    partition: str,
    config: FrameSettings,
    log: Callable[[str], None] | None = None,
) -> tuple[pl.DataFrame, FramesFacts]:
    """The day's ``frames`` table from its accepted ``raw_media`` rows, and facts; ``log``
    gets the stills' progress (``extract_partition``)."""
    accepted = raw_media.filter(pl.col("status") == MediaStatus.ACCEPTED.value)
    if "kind" in accepted.columns:  # chat logs are read by the speech group's chat_events
        accepted = accepted.filter(pl.col("kind") != MediaKind.CHAT.value)
    rows = accepted.to_dicts()
    result = extract_partition(rows, store, partition, config, log)
    table = records_to_frame(result.frames, FrameRecord)
    return table, FramesFacts(len(rows), tuple(result.failures), config.mode)


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


def _failure(row: Mapping[str, Any], reason: RejectReason, text: str) -> ExtractionFailure:
    # ffmpeg's stderr tail (up to 3000 characters) stays whole
    detail = without_content(text, limit=4000)
    return ExtractionFailure(row["media_id"], row["source_name"], reason.value, detail)


# What the stage knows of each media id, in row order: its records, its failure, seconds.
_Done = dict[str, tuple[list[FrameRecord], ExtractionFailure | None, float | None]]


def extract_partition(
    media_rows: list[dict],
    store: Store,
    partition_key: str,
    settings: FrameSettings,
    log: Callable[[str], None] | None = None,
) -> ExtractionResult:
    """Extract and upload the frames of every accepted media row of one partition.

    Work folders of runs that were killed (``kill -9``) are removed first. Stills are
    standardised by ``settings.workers`` processes (0: one per CPU; ``log``, default this
    module's logger, gets a progress line at most every 10 s), then videos one at a time
    (ffmpeg threads its own decoding). Frames and failures are listed in row order.
    """
    clean_stale_work_dirs()
    done: _Done = {}
    stills: list[dict] = []
    videos: list[tuple[dict, MediaKind]] = []
    for row in media_rows:
        media_id = row["media_id"]
        if media_id in done:
            continue  # the same content twice would write the same frame ids twice
        try:
            kind = MediaKind(row["kind"])
        except ValueError:
            kind = MediaKind.UNKNOWN
        done[media_id] = ([], None, None)  # holds the row's place
        if kind not in (MediaKind.VIDEO, MediaKind.IMAGE) or not row.get("object_path"):
            detail = f"kind {row['kind']!r}, object_path {row.get('object_path')!r}"
            done[media_id] = ([], _failure(row, RejectReason.UNSUPPORTED_TYPE, detail), None)
        elif kind is MediaKind.IMAGE:
            stills.append(row)
        else:
            videos.append((row, kind))
    progress = progress_log(log or _log.info, "frames: stills standardised", "stills")
    _standardize_stills(stills, store, partition_key, settings, done, progress)
    for row, kind in videos:
        started = time.perf_counter()
        with store.local_copy(row["object_path"]) as local, work_dir("frames_") as tmp:
            try:
                duration = row.get("duration_s")
                mode, frames = extract_local(kind, Path(local), tmp, settings, duration)
            except Exception as exc:  # one undecodable file must not fail the partition
                text = f"{type(exc).__name__}: {exc}"
                failed = _failure(row, failure_reason(exc), text)
                done[row["media_id"]] = ([], failed, time.perf_counter() - started)
                continue
            records = _publish(row, kind, mode, frames, store, partition_key)
        done[row["media_id"]] = (records, None, time.perf_counter() - started)
    result = ExtractionResult()
    for media_id, (records, failure, seconds) in done.items():
        result.frames.extend(records)
        if failure is not None:
            result.failures.append(failure)
        if seconds is not None:
            result.timings[media_id] = seconds
    return result


# A worker starts in ~0.3 s (it imports Pillow and numpy) and standardises a 1280x720
# JPEG in ~15 ms, a 12-megapixel photo in ~0.2 s: from a few dozen stills on, a pool pays.
MIN_POOL_STILLS = 32


def _standardize_stills(
    stills: list[dict],
    store: Store,
    partition_key: str,
    settings: FrameSettings,
    done: _Done,
    progress: Progress,
) -> None:
    """Stills through ``map_bounded`` (``media/stills.py``'s light ``standardize_job``):
    a still's local copy and work folder are opened when it is submitted and closed once
    its JPEG is uploaded, so at most the pool's ``max_pending`` of them exist at a time.
    A still that fails gets the reject reason ``extract_local`` would give it."""
    opened: deque[tuple[ExitStack, StillJob, float]] = deque()

    def jobs() -> Iterator[StillJob]:
        for row in stills:
            started = time.perf_counter()
            with ExitStack() as stack:
                local = stack.enter_context(store.local_copy(row["object_path"]))
                tmp = stack.enter_context(work_dir("frames_"))
                target = tmp / "still.jpg"
                job = StillJob(Path(local), target, settings.still_max_edge, settings.jpeg_quality)
                opened.append((stack.pop_all(), job, time.perf_counter() - started))
            yield job

    results = map_bounded(
        standardize_job,
        jobs(),
        settings.workers,
        total=len(stills),
        progress=progress,
        min_items=MIN_POOL_STILLS,
    )
    try:
        for row, result in zip(stills, results, strict=True):
            stack, job, seconds = opened.popleft()
            failure: ExtractionFailure | None = None
            with stack:
                started = time.perf_counter()
                if isinstance(result, ItemError):
                    exc = result.exception
                    reason = failure_reason(exc) if exc is not None else RejectReason.CORRUPT
                    records, failure = [], _failure(row, reason, str(result))
                    seconds += result.seconds
                else:
                    (width, height), worker_s = result
                    frame = ExtractedFrame(0.0, job.dst, width, height, None)
                    records = _publish(
                        row, MediaKind.IMAGE, STILL_MODE, [frame], store, partition_key
                    )
                    seconds += worker_s
            done[row["media_id"]] = (records, failure, seconds + time.perf_counter() - started)
    finally:
        results.close()
        while opened:
            opened.popleft()[0].close()
