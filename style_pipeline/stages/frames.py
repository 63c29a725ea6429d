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
from style_pipeline.media.extract import extract_local, failure_reason
from style_pipeline.media.frames import ExtractedFrame, frame_id
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
    accepted = raw_media.filter(pl.col("status") == MediaStatus.ACCEPTED.value).to_dicts()
    result = extract_partition(accepted, store, partition, config, log)
    table = records_to_frame(result.frames, FrameRecord)
    return table, FramesFacts(len(accepted), tuple(result.failures), config.mode)


def _publish(
    row: Mapping[str, Any],
    kind: MediaKind,
    extracted: _Extracted,
    store: Store,
    partition_key: str,
) -> list[FrameRecord]:
    records = []
    for frame in extracted.frames:
        fid = frame_id(row["media_id"], frame.timestamp_s, extracted.mode)
        key = store.put_file(frame.path, layout.frame_key(partition_key, fid))
        records.append(
            FrameRecord(
                frame_id=fid,
                media_id=row["media_id"],
                source_name=row["source_name"],
                kind=kind,
                mode=extracted.mode,
                timestamp_s=round(frame.timestamp_s, 6),
                path=key,
                width=frame.width,
                height=frame.height,
                sha256=sha256_file(frame.path),
                scene_score=frame.scene_score,
            )
        )
    return records


# A worker imports Pillow and the extraction modules (~0.2 s) and standardises a 1280x720
# photo in ~15 ms: from about this many stills on, a pool pays off.
MIN_POOL_STILLS = 16


@dataclass(frozen=True)
class _Job:
    """One file to extract: everything a pool worker needs, as plain picklable values."""

    media_id: str
    source_name: str
    kind: MediaKind
    local: Path
    work: Path
    settings: FrameSettings
    duration_s: float | None


@dataclass(frozen=True)
class _Extracted:
    """Frames of a job (``failure`` None) or why there are none, and seconds spent."""

    mode: str
    frames: list[ExtractedFrame]
    failure: ExtractionFailure | None
    seconds: float


def _extract(job: _Job) -> _Extracted:
    """``extract_local`` on one file; an error becomes its ``ExtractionFailure``."""
    started = time.perf_counter()
    try:
        mode, frames = extract_local(job.kind, job.local, job.work, job.settings, job.duration_s)
    except Exception as exc:  # one undecodable file must not fail the partition
        reason = failure_reason(exc).value
        # ffmpeg's stderr tail (up to 3000 characters) stays whole
        detail = without_content(f"{type(exc).__name__}: {exc}", limit=4000)
        failure = ExtractionFailure(job.media_id, job.source_name, reason, detail)
        return _Extracted("", [], failure, time.perf_counter() - started)
    return _Extracted(mode, frames, None, time.perf_counter() - started)


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
    (ffmpeg threads its own decoding). The result lists frames and failures in row order,
    whatever the order of the work.
    """
    clean_stale_work_dirs()
    done: dict[str, tuple[list[FrameRecord], ExtractionFailure | None, float | None]] = {}
    stills: list[tuple[dict, MediaKind]] = []
    videos: list[tuple[dict, MediaKind]] = []
    for row in media_rows:
        media_id, source = row["media_id"], row["source_name"]
        if media_id in done:
            continue  # the same content twice would write the same frame ids twice
        try:
            kind = MediaKind(row["kind"])
        except ValueError:
            kind = MediaKind.UNKNOWN
        done[media_id] = ([], None, None)  # placeholder: keeps the row order
        if kind not in (MediaKind.VIDEO, MediaKind.IMAGE) or not row.get("object_path"):
            detail = f"kind {row['kind']!r}, object_path {row.get('object_path')!r}"
            unsupported = RejectReason.UNSUPPORTED_TYPE.value
            done[media_id] = ([], ExtractionFailure(media_id, source, unsupported, detail), None)
        else:
            (stills if kind is MediaKind.IMAGE else videos).append((row, kind))
    progress = progress_log(log or _log.info, "frames: stills standardised", "stills")
    _standardize_stills(stills, store, partition_key, settings, done, progress)
    for row, kind in videos:
        started = time.perf_counter()
        with store.local_copy(row["object_path"]) as local, work_dir("frames_") as tmp:
            extracted = _extract(_job(row, kind, Path(local), tmp, settings))
            records = _publish(row, kind, extracted, store, partition_key)
        done[row["media_id"]] = (records, extracted.failure, time.perf_counter() - started)
    result = ExtractionResult()
    for media_id, (records, failure, seconds) in done.items():
        result.frames.extend(records)
        if failure is not None:
            result.failures.append(failure)
        if seconds is not None:
            result.timings[media_id] = seconds
    return result


def _job(
    row: Mapping[str, Any], kind: MediaKind, local: Path, work: Path, settings: FrameSettings
) -> _Job:
    return _Job(
        row["media_id"], row["source_name"], kind, local, work, settings, row.get("duration_s")
    )


def _standardize_stills(
    stills: list[tuple[dict, MediaKind]],
    store: Store,
    partition_key: str,
    settings: FrameSettings,
    done: dict[str, tuple[list[FrameRecord], ExtractionFailure | None, float | None]],
    progress: Progress,
) -> None:
    """Stills through ``map_bounded``: a still's local copy and work folder are opened
    when it is submitted and closed once its JPEG is uploaded, so at most the pool's
    ``max_pending`` of them exist at a time."""
    opened: deque[tuple[ExitStack, float]] = deque()

    def jobs() -> Iterator[_Job]:
        for row, kind in stills:
            started = time.perf_counter()
            with ExitStack() as stack:
                local = stack.enter_context(store.local_copy(row["object_path"]))
                tmp = stack.enter_context(work_dir("frames_"))
                opened.append((stack.pop_all(), time.perf_counter() - started))
            yield _job(row, kind, Path(local), tmp, settings)

    results = map_bounded(
        _extract,
        jobs(),
        settings.workers,
        total=len(stills),
        progress=progress,
        min_items=MIN_POOL_STILLS,
    )
    try:
        for (row, kind), extracted in zip(stills, results, strict=True):
            if isinstance(extracted, ItemError):  # _extract returns failures: a bug
                extracted.reraise(f"frames: still {row['source_name']} ({row['media_id']})")
            stack, fetch_s = opened.popleft()
            with stack:
                started = time.perf_counter()
                records = _publish(row, kind, extracted, store, partition_key)
            seconds = fetch_s + extracted.seconds + time.perf_counter() - started
            done[row["media_id"]] = (records, extracted.failure, seconds)
    finally:
        results.close()
        while opened:
            opened.popleft()[0].close()
