"""The hot-folder sensor's logic: wait for files to settle, hash them, request one run per set.

One tick takes a scan of the drop folder and the previous ``HotFolderState`` and returns a
``TickPlan``: the runs to request, the next state and counts. Nothing here talks to
Dagster or storage; ``media.sensor_state`` keeps the state in storage and the small
Dagster cursor that points at it.

- **Stable**: a file is stable once its ``(size, mtime, ctime)`` has not changed for
  ``settle_seconds`` of observation, or when ``max(mtime, ctime)`` is already older than
  ``settle_seconds`` (so after a restart with a lost state old files are ready at once).
  ``ctime`` is included because every write bumps it, even when a tool restores an old
  mtime afterwards, and ``os.utime`` cannot set it back.
- **Hashed**: stable files are hashed (sha256 of the content; a symlink by its target
  string, never followed; other special files by name, never opened) within a time
  budget. The hash is cached under the file's ``(rel, size, mtime, ctime)``.
- **Requested**: files are grouped by arrival date (``DropEntry.arrival_date``, the rule
  ``raw_media`` uses). A date's digest is the sha256 of the sorted set of its content
  hashes (names excluded). A date is requested when its digest differs from the one last
  requested and every file of the date is stable and hashed. ``run_key`` is
  ``"{date}:{digest[:16]}"``, so Dagster drops a repeated request after a lost state.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer, model_validator

from style_pipeline.media.checksum import sha256_file
from style_pipeline.media.dropfolder import DropEntry

STATE_VERSION: Final = 1
TAG_PREFIX = "style_pipeline"
_ROW_FIELDS = ("size", "mtime_ns", "ctime_ns", "first_seen", "sha256")
_HEX64 = r"^[0-9a-f]{64}$"
_HEX64_RE = re.compile(_HEX64)


class FileState(BaseModel):
    """What the sensor last saw of one file; serialized as a compact JSON row."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size: int = Field(ge=0)
    mtime_ns: int
    ctime_ns: int
    first_seen: float  # epoch seconds when this (size, mtime, ctime) was first observed
    sha256: str | None = Field(default=None, pattern=_HEX64)

    @model_validator(mode="before")
    @classmethod
    def _from_row(cls, data: Any) -> Any:
        if isinstance(data, list | tuple):
            if len(data) != len(_ROW_FIELDS):
                raise ValueError(f"file row needs {len(_ROW_FIELDS)} values, got {len(data)}")
            return dict(zip(_ROW_FIELDS, data, strict=True))
        return data

    @model_serializer
    def _as_row(self) -> list:
        return [self.size, self.mtime_ns, self.ctime_ns, self.first_seen, self.sha256]

    def same_signature(self, entry: DropEntry) -> bool:
        return (self.size, self.mtime_ns, self.ctime_ns) == (
            entry.size,
            entry.mtime_ns,
            entry.ctime_ns,
        )


class HotFolderState(BaseModel):
    """The sensor's memory: per relative path its ``FileState``, per date the last set digest.

    It grows with the drop folder (about 150 bytes a file), so it lives in storage, not in
    the Dagster cursor (see ``media.sensor_state``). Version 1 is also the format the
    cursor itself had before, which lets an old cursor be migrated as it is.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = STATE_VERSION
    files: dict[str, FileState] = Field(default_factory=dict)
    requested: dict[str, str] = Field(default_factory=dict)  # partition key -> set digest


@dataclass(frozen=True, slots=True)
class DateWindow:
    """The dates that have a partition (inclusive)."""

    first: dt.date
    last: dt.date

    def reason(self, day: dt.date) -> str | None:
        """Why ``day`` cannot be requested, or ``None`` when it can."""
        if day < self.first:
            return f"before the first partition {self.first.isoformat()}"
        if day > self.last:
            return f"after the last partition {self.last.isoformat()}"
        return None


@dataclass(frozen=True, slots=True)
class PlannedRequest:
    partition_key: str
    run_key: str
    digest: str
    n_files: int
    tags: dict[str, str]


@dataclass(frozen=True, slots=True)
class TickCounts:
    files: int = 0  # entries in the scan
    new: int = 0  # paths not in the previous state
    settling: int = 0  # not stable yet
    hashed: int = 0  # hashed during this tick
    deferred: int = 0  # stable, left for the next tick by the hash budget
    unreadable: int = 0  # stable but could not be hashed; retried next tick
    out_of_range: int = 0  # arrival date has no partition


@dataclass(frozen=True, slots=True)
class TickPlan:
    requests: list[PlannedRequest]
    state: HotFolderState
    counts: TickCounts
    skipped: list[str] = field(default_factory=list)  # human-readable reasons


def set_digest(hashes: Iterable[str]) -> str:
    """sha256 over the sorted, de-duplicated content hashes (names play no part)."""
    return hashlib.sha256("\n".join(sorted(set(hashes))).encode()).hexdigest()


def run_key_for(partition_key: str, digest: str) -> str:
    return f"{partition_key}:{digest[:16]}"


def _identity(
    entry: DropEntry, hasher: Callable[[os.PathLike], str], max_hash_bytes: int | None = None
) -> str:
    """Content hash of a regular file; a symlink by its target; other types by name.

    Files over ``max_hash_bytes`` (which ``raw_media`` rejects as too large anyway) are
    identified by name, size and mtime so one huge file cannot blow the sensor timeout.
    """
    if entry.is_symlink:
        target = os.fsencode(os.readlink(entry.path))
        return hashlib.sha256(b"symlink\0" + target).hexdigest()
    if not entry.is_regular:
        return hashlib.sha256(b"special\0" + entry.rel.encode()).hexdigest()
    if max_hash_bytes is not None and entry.size > max_hash_bytes:
        signature = f"oversize\0{entry.rel}\0{entry.size}\0{entry.mtime_ns}"
        return hashlib.sha256(signature.encode()).hexdigest()
    digest = hasher(entry.path)
    if not _HEX64_RE.match(digest):
        raise ValueError(f"hasher returned {digest!r} for {entry.rel}, not a hex sha256")
    return digest


def _is_stable(entry: DropEntry, state: FileState, now: float, settle: float) -> bool:
    observed = now - state.first_seen >= settle
    aged = max(entry.mtime_ns, entry.ctime_ns) / 1e9 <= now - settle
    return observed or aged


def plan_tick(
    entries: Iterable[DropEntry],
    previous: HotFolderState,
    now_epoch: float,
    settle_seconds: float,
    hash_budget_seconds: float,
    hasher: Callable[[os.PathLike], str] = sha256_file,
    max_hash_bytes: int | None = None,
    valid_dates: DateWindow | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> TickPlan:
    """Plan one sensor tick (see the module docstring).

    At least one file is hashed per tick whatever the budget, so progress never stalls.
    """
    if settle_seconds < 0 or hash_budget_seconds <= 0:
        raise ValueError(
            f"settle_seconds must be >= 0 and hash_budget_seconds > 0, "
            f"got {settle_seconds} and {hash_budget_seconds}"
        )
    started = clock()
    states: dict[str, FileState] = {}
    by_date: dict[dt.date, list[DropEntry]] = {}
    to_hash: list[tuple[dt.date, DropEntry]] = []
    counts = {name: 0 for name in TickCounts.__dataclass_fields__}
    skipped: list[str] = []
    out_of_range: dict[dt.date, int] = {}

    for entry in entries:
        counts["files"] += 1
        prev = previous.files.get(entry.rel)
        if prev is not None and prev.same_signature(entry):
            state = prev
        else:
            if prev is None:
                counts["new"] += 1
            state = FileState(
                size=entry.size,
                mtime_ns=entry.mtime_ns,
                ctime_ns=entry.ctime_ns,
                first_seen=now_epoch,
            )
        states[entry.rel] = state
        day = entry.arrival_date
        if valid_dates is not None and valid_dates.reason(day):
            out_of_range[day] = out_of_range.get(day, 0) + 1
            continue
        by_date.setdefault(day, []).append(entry)
        if not _is_stable(entry, state, now_epoch, settle_seconds):
            counts["settling"] += 1
        elif state.sha256 is None:
            to_hash.append((day, entry))

    to_hash.sort(key=lambda item: (item[0], item[1].rel))  # oldest dates complete first
    unreadable: set[str] = set()
    for _, entry in to_hash:
        if counts["hashed"] and clock() - started >= hash_budget_seconds:
            counts["deferred"] += 1
            continue
        try:
            digest = _identity(entry, hasher, max_hash_bytes)
        except OSError as exc:
            unreadable.add(entry.rel)
            skipped.append(f"{entry.rel}: unreadable, retried next tick ({exc.strerror or exc})")
            continue
        counts["hashed"] += 1
        states[entry.rel] = states[entry.rel].model_copy(update={"sha256": digest})
    counts["unreadable"] = len(unreadable)

    requests: list[PlannedRequest] = []
    requested: dict[str, str] = {}
    for day in sorted(by_date):
        key = day.isoformat()
        files = [e for e in by_date[day] if e.rel not in unreadable]
        hashes = [states[e.rel].sha256 for e in files]
        known = [h for h in hashes if h is not None]
        if key in previous.requested:
            requested[key] = previous.requested[key]
        if not files or len(known) != len(hashes):
            continue  # empty, or part of the set is settling / waiting for its hash
        digest = set_digest(known)
        if requested.get(key) == digest:
            continue
        requested[key] = digest
        tags = {
            f"{TAG_PREFIX}/trigger": "hot_folder_sensor",
            f"{TAG_PREFIX}/file_set": digest[:16],
            f"{TAG_PREFIX}/files": str(len(files)),
        }
        requests.append(PlannedRequest(key, run_key_for(key, digest), digest, len(files), tags))

    for day, n in sorted(out_of_range.items()):
        if valid_dates is None:  # out_of_range is only filled when a window is given
            raise RuntimeError(f"{day.isoformat()} counted out of range without a date window")
        skipped.append(f"{day.isoformat()}: {n} file(s) {valid_dates.reason(day)}; not requested")
    counts["out_of_range"] = sum(out_of_range.values())
    new_state = HotFolderState(files=states, requested=requested)
    return TickPlan(requests, new_state, TickCounts(**counts), skipped)
