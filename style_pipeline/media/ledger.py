"""Which partitions accepted which content: one immutable JSON object per (sha256, date).

Layout: ``raw_media/ledger/<sha256>/<YYYY-MM-DD>.json``. One object per pair (never a
shared file that is read, modified and rewritten) keeps concurrent partitions from
racing each other, works the same on S3, and makes re-runs idempotent.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ENTRY_NAME = re.compile(r"^(\d{4}-\d{2}-\d{2})\.json$")


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    sha256: str
    partition: str  # ISO date
    source_name: str
    size_bytes: int
    kind: str
    extension: str
    object_path: str

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), sort_keys=True, ensure_ascii=False) + "\n").encode()


def _check_sha(sha256: str) -> str:
    if not _SHA256.match(sha256):
        raise ValueError(f"not a lowercase hex sha256: {sha256!r}")
    return sha256


class ChecksumLedger:
    """Accepted content by sha256, across all partitions of one storage root."""

    def __init__(self, store: Store):
        self.store = store

    def key(self, sha256: str, partition: dt.date) -> str:
        return layout.ledger_key(_check_sha(sha256), partition.isoformat())

    def record(
        self,
        sha256: str,
        partition: dt.date,
        source_name: str,
        size_bytes: int,
        kind: str,
        extension: str,
        object_path: str,
    ) -> bool:
        """Note that ``partition`` accepted ``sha256``; True when the entry was written.

        Entries are immutable: an existing entry for the same (sha256, partition) is
        kept as it is, so recording again is a no-op.
        """
        key = self.key(sha256, partition)
        if self.store.exists(key):
            return False
        entry = LedgerEntry(
            sha256=sha256,
            partition=partition.isoformat(),
            source_name=source_name,
            size_bytes=size_bytes,
            kind=str(kind),
            extension=extension,
            object_path=object_path,
        )
        self.store.put_bytes(entry.to_json(), key)
        return True

    def partitions(self, sha256: str) -> list[dt.date]:
        """The dates that accepted ``sha256``, oldest first."""
        days = []
        for key in self.store.list(layout.ledger_dir(_check_sha(sha256))):
            match = _ENTRY_NAME.match(key.rsplit("/", 1)[-1])
            if match:  # skips temp files of writes in progress
                days.append(dt.date.fromisoformat(match.group(1)))
        return sorted(days)

    def entry(self, sha256: str, partition: dt.date) -> LedgerEntry:
        """The stored entry of (sha256, partition); KeyError when there is none."""
        key = self.key(sha256, partition)
        if not self.store.exists(key):
            raise KeyError(key)
        return LedgerEntry(**json.loads(self.store.read_bytes(key)))

    def earliest(self, sha256: str, before: dt.date | None = None) -> tuple[dt.date, str] | None:
        """(date, source_name) of the oldest acceptance, optionally only dates < ``before``."""
        days = [d for d in self.partitions(sha256) if before is None or d < before]
        if not days:
            return None
        return days[0], self.entry(sha256, days[0]).source_name
