"""Apply one review action to the day's overrides document and write it back atomically.

The document lives in its own Store (``curation.overrides_root``: a local folder or
``s3://``) at the key the ``curated_frames`` asset reads: the existing ``<date>.yaml``,
``.yml`` or ``.json`` keeps its name and format, a new one is ``<date>.yml``. Changes of
one process are serialized per date (read-modify-write); the write itself is atomic
(temp + rename locally, one PUT on S3).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Literal

from style_pipeline.contracts.curation import OverrideChange, Overrides
from style_pipeline.curation.overrides import dump_overrides, override_key, parse_overrides
from style_pipeline.storage.store import Store

Action = Literal["lock_in", "exclude", "clear"]
MAX_HISTORY = 1000  # oldest changes are dropped past this: the file stays readable


def apply_action(current: Overrides, change: OverrideChange) -> Overrides:
    """``current`` with ``change.frame_id`` locked in, excluded or cleared, and recorded."""
    fid = change.frame_id
    lock_in = [f for f in current.lock_in if f != fid]
    exclude = [f for f in current.exclude if f != fid]
    if change.action == "lock_in":
        lock_in.append(fid)
    elif change.action == "exclude":
        exclude.append(fid)
    history = [*current.history, change][-MAX_HISTORY:]
    return current.model_copy(
        update={
            "lock_in": lock_in,
            "exclude": exclude,
            "updated_by": change.by,
            "updated_at": change.at,
            "history": history,
        }
    )


class OverridesWriter:
    """Reads and writes the overrides documents under one Store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def read(self, date: str) -> tuple[str, Overrides]:
        """(key, document) of ``date``; an absent document is empty."""
        key = override_key(self.store, date)
        if not self.store.exists(key):
            return key, Overrides()
        return key, parse_overrides(self.store.read_bytes(key).decode("utf-8"), key)

    def apply(self, date: str, frame_id: str, action: Action, by: str) -> tuple[str, Overrides]:
        """Record ``action`` on ``frame_id`` for ``date``; returns (key, new document)."""
        with self._guard:
            lock = self._locks.setdefault(date, threading.Lock())
        with lock:
            key, current = self.read(date)
            change = OverrideChange(
                frame_id=frame_id, action=action, by=by, at=dt.datetime.now(dt.UTC)
            )
            updated = apply_action(current, change)
            self.store.put_bytes(dump_overrides(updated, key), key)
        return key, updated
