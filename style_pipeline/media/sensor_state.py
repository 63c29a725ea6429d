"""Where the hot-folder sensor keeps its memory: a snapshot in storage, a small cursor in Dagster.

Dagster stores a sensor's cursor in every tick row, so a cursor that grows with the drop
folder (5,000 files: ~780 KB) fills the instance database. The ``HotFolderState`` is kept
instead as a gzip'd JSON snapshot in storage, addressed by the sha256 of its bytes
(``layout.sensor_state_key``), and the cursor is ``{"v":2,"gen":…,"index":…,"files":…}``:
about 120 bytes whatever the file count.

- **Crash safety**: a snapshot is written before the tick returns and becomes current only
  when Dagster commits the cursor naming it. The snapshot the previous cursor names is
  kept, so a tick that fails after writing leaves the committed state whole; other
  snapshots are deleted. An unchanged state writes nothing.
- **Recovery**: no cursor is an empty state. A version-1 cursor (the whole state inline)
  is migrated, requested sets included, so nothing is requested again. A corrupt cursor
  or a missing / damaged snapshot starts from an empty state with a warning: files are
  hashed again and each date's run key, derived from its content, repeats the earlier one,
  which Dagster skips (a sensor's run keys are unique).
- **Storage errors** other than a missing snapshot propagate (``OSError``); the sensor then
  skips the tick and keeps its cursor.
- **Work done outside the sensor** (``style-pipeline demo`` / ``materialize`` of
  ``raw_media`` for a date, in process): ``record_processed`` hashes that date's files as a
  tick would and writes a small ``RecordedSet`` under ``recorded/<date>.json``. ``load``
  merges every record into the state (the file rows with their hashes, and the date's
  requested set digest, the one its run key is made of), so the next tick requests nothing
  for those files; a new or changed file still makes a new set. A record stays until a
  committed state already holds its digest for its date, then the next ``save`` deletes
  it: a tick that fails after merging it merges it again.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import os
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from style_pipeline.media.checksum import sha256_file
from style_pipeline.media.dropfolder import DropEntry
from style_pipeline.media.hotfolder import FileState, HotFolderState, plan_tick
from style_pipeline.storage import layout
from style_pipeline.storage.s3_errors import StorageBucketMissing
from style_pipeline.storage.store import Store

CURSOR_VERSION: Final = 2


class SensorCursor(BaseModel):
    """The Dagster cursor: which snapshot is current, and how many times it changed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[2] = CURSOR_VERSION
    gen: int = Field(ge=0)  # generation: +1 each time a tick changes the state
    index: str = Field(pattern=r"^[0-9a-f]{64}$")  # sha256 of the snapshot = its key
    files: int = Field(ge=0)  # files in the snapshot, for whoever reads the tick


class RecordedSet(BaseModel):
    """A date's file set processed outside the sensor (a CLI / demo run of ``raw_media``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: Literal[1] = 1
    partition_key: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    digest: str = Field(pattern=r"^[0-9a-f]{64}$")  # ``hotfolder.set_digest`` of the set
    run_key: str  # the run key the sensor would have used for this set
    files: dict[str, FileState]
    run_id: str | None = None  # the run that processed it, when known
    recorded_at: float


def encode_cursor(cursor: SensorCursor) -> str:
    return cursor.model_dump_json()


def encode_snapshot(state: HotFolderState) -> bytes:
    """The state as gzip'd compact JSON; the same state always gives the same bytes."""
    return gzip.compress(state.model_dump_json().encode(), compresslevel=6, mtime=0)


def decode_snapshot(blob: bytes) -> HotFolderState:
    """The state in ``blob``; ``ValueError`` when it is not a readable snapshot."""
    try:
        text = gzip.decompress(blob)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise ValueError(f"not a gzip snapshot ({exc})") from exc
    return HotFolderState.model_validate_json(text)  # ValidationError is a ValueError


@dataclass(frozen=True, slots=True)
class LoadedState:
    state: HotFolderState
    cursor: SensorCursor | None  # the committed cursor, when it named a readable snapshot
    warnings: list[str] = field(default_factory=list)
    migrated: bool = False  # read from a version-1 cursor


@dataclass(frozen=True, slots=True)
class SavedState:
    cursor: SensorCursor
    cursor_text: str
    key: str
    snapshot_bytes: int
    written: bool  # False: the state did not change, nothing was written
    pruned: int  # older snapshots deleted
    warnings: list[str] = field(default_factory=list)


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0][:200]


class SensorStateStore:
    """Loads and saves one sensor's ``HotFolderState`` under ``layout.sensor_state_dir``."""

    def __init__(self, store: Store, sensor: str) -> None:
        self.store = store
        self.sensor = sensor
        self.prefix = layout.sensor_state_dir(sensor)
        self.records_prefix = f"{self.prefix}/recorded"
        self._settled_records: list[str] = []  # records the loaded state already holds

    def record_key(self, partition_key: str) -> str:
        dt.date.fromisoformat(partition_key)  # ValueError: not a partition key
        return f"{self.records_prefix}/{partition_key}.json"

    def record(self, recorded: RecordedSet) -> str:
        """Store ``recorded`` (replacing an earlier record of its date); returns its key."""
        key = self.record_key(recorded.partition_key)
        return self.store.put_bytes(recorded.model_dump_json().encode(), key)

    def load(self, cursor_text: str | None) -> LoadedState:
        """The state the committed cursor points at, with the recorded sets merged in."""
        return self._merge_records(self._load(cursor_text))

    def _merge_records(self, loaded: LoadedState) -> LoadedState:
        """Merge every ``RecordedSet`` the state does not hold yet (module docstring)."""
        self._settled_records = []
        files = dict(loaded.state.files)
        requested = dict(loaded.state.requested)
        warnings = list(loaded.warnings)
        merged = 0
        for key in self.store.list(self.records_prefix):
            if not key.endswith(".json"):
                continue
            try:
                recorded = RecordedSet.model_validate_json(self.store.read_bytes(key))
            except FileNotFoundError:
                continue  # deleted by a concurrent save
            except ValueError as exc:
                warnings.append(f"recorded set {key} unreadable, ignored ({_first_line(exc)})")
                continue
            if loaded.cursor is not None and requested.get(recorded.partition_key) == (
                recorded.digest
            ):
                self._settled_records.append(key)  # committed: deleted at the next save
                continue
            files.update(recorded.files)
            requested[recorded.partition_key] = recorded.digest
            merged += 1
        if not merged:
            return replace(loaded, warnings=warnings)
        state = HotFolderState(files=files, requested=requested)
        return replace(loaded, state=state, warnings=warnings)

    def _load(self, cursor_text: str | None) -> LoadedState:
        if not cursor_text:
            return LoadedState(HotFolderState(), None)
        try:
            data = json.loads(cursor_text)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            return self._start_over(f"cursor unreadable ({_first_line(exc)})")
        if isinstance(data, dict) and data.get("version") == 1 and "v" not in data:
            try:
                state = HotFolderState.model_validate(data)
            except ValidationError as exc:
                return self._start_over(f"version-1 cursor unreadable ({_first_line(exc)})")
            note = (
                f"migrated a version-1 cursor ({len(state.files)} files, "
                f"{len(cursor_text.encode())} bytes) to a snapshot in storage"
            )
            return LoadedState(state, None, [note], migrated=True)
        try:
            cursor = SensorCursor.model_validate(data)
        except ValidationError as exc:
            return self._start_over(f"cursor unreadable ({_first_line(exc)})")
        key = layout.sensor_state_key(self.sensor, cursor.index)
        try:
            blob = self.store.read_bytes(key)
        except StorageBucketMissing:
            raise  # the whole root is unusable, not just this snapshot
        except FileNotFoundError:
            return self._start_over(f"state snapshot {key} is missing")
        if hashlib.sha256(blob).hexdigest() != cursor.index:
            return self._start_over(f"state snapshot {key} does not match its digest")
        try:
            return LoadedState(decode_snapshot(blob), cursor)
        except ValueError as exc:
            return self._start_over(f"state snapshot {key} unreadable ({_first_line(exc)})")

    def save(self, state: HotFolderState, previous: SensorCursor | None) -> SavedState:
        """Store ``state`` (unless unchanged) and the cursor that names it; prune the rest."""
        blob = encode_snapshot(state)
        digest = hashlib.sha256(blob).hexdigest()
        key = layout.sensor_state_key(self.sensor, digest)
        settled = self._delete_settled_records()
        if previous is not None and previous.index == digest:
            cursor = previous
            return SavedState(cursor, encode_cursor(cursor), key, len(blob), False, 0, settled)
        # Written even when the key exists: a damaged snapshot of the same state (the very
        # one a start-over rebuilds) must be replaced, not trusted by its name.
        self.store.put_bytes(blob, key)
        generation = previous.gen + 1 if previous is not None else 1
        cursor = SensorCursor(gen=generation, index=digest, files=len(state.files))
        keep = {digest} | ({previous.index} if previous is not None else set())
        pruned, warnings = self._prune(keep)
        return SavedState(
            cursor, encode_cursor(cursor), key, len(blob), True, pruned, settled + warnings
        )

    def _delete_settled_records(self) -> list[str]:
        """Delete the records the committed state holds; a failure only warns (retried)."""
        warnings = []
        for key in self._settled_records:
            try:
                self.store.delete(key)
            except OSError as exc:
                warnings.append(f"could not delete recorded set {key} ({_first_line(exc)})")
        self._settled_records = []
        return warnings

    def _prune(self, keep: set[str]) -> tuple[int, list[str]]:
        """Delete this sensor's snapshots other than ``keep``; a failure only warns."""
        pruned = 0
        try:
            for key in self.store.list(self.prefix):
                digest = layout.sensor_state_digest_of(key, self.sensor)
                if digest is not None and digest not in keep and self.store.delete(key):
                    pruned += 1
        except OSError as exc:  # old snapshots only cost space: retried at the next change
            return pruned, [f"could not prune old state snapshots ({_first_line(exc)})"]
        return pruned, []

    def _start_over(self, why: str) -> LoadedState:
        return LoadedState(
            HotFolderState(),
            None,
            [f"{why}; starting from an empty state (files are hashed again; run keys repeat)"],
        )


def recorded_set(
    entries: Iterable[DropEntry],
    partition_key: str,
    run_id: str | None = None,
    hasher: Callable[[os.PathLike], str] = sha256_file,
    max_hash_bytes: int | None = None,
    now_epoch: float | None = None,
) -> RecordedSet | None:
    """The file set of ``partition_key`` in ``entries``, hashed as a sensor tick would.

    ``None`` when no file arrived that day. Every file counts as settled (the run that
    processed them read them as they are), and the hash budget is unlimited.
    """
    now = time.time() if now_epoch is None else now_epoch
    day = [e for e in entries if e.arrival_date.isoformat() == partition_key]
    plan = plan_tick(
        day,
        HotFolderState(),
        now_epoch=now,
        settle_seconds=0.0,
        hash_budget_seconds=float("inf"),
        hasher=hasher,
        max_hash_bytes=max_hash_bytes,
    )
    request = next((r for r in plan.requests if r.partition_key == partition_key), None)
    if request is None:
        return None
    return RecordedSet(
        partition_key=partition_key,
        digest=request.digest,
        run_key=request.run_key,
        files=plan.state.files,
        run_id=run_id,
        recorded_at=now,
    )
