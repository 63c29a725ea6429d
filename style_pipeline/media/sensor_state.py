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
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from style_pipeline.media.hotfolder import HotFolderState
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

    def load(self, cursor_text: str | None) -> LoadedState:
        """The state the committed cursor points at (see the module docstring)."""
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
        if previous is not None and previous.index == digest:
            cursor = previous
            return SavedState(cursor, encode_cursor(cursor), key, len(blob), False, 0)
        # Written even when the key exists: a damaged snapshot of the same state (the very
        # one a start-over rebuilds) must be replaced, not trusted by its name.
        self.store.put_bytes(blob, key)
        generation = previous.gen + 1 if previous is not None else 1
        cursor = SensorCursor(gen=generation, index=digest, files=len(state.files))
        keep = {digest} | ({previous.index} if previous is not None else set())
        pruned, warnings = self._prune(keep)
        return SavedState(cursor, encode_cursor(cursor), key, len(blob), True, pruned, warnings)

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
