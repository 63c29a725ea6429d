"""Scan the hot folder and assign each file to the UTC date it arrived.

Arrival date rule (one function shared by the sensor and ``raw_media``):

1. a file under a top-level folder named ``YYYY-MM-DD`` belongs to that date
   (``style-pipeline drop`` and backfills use this; it never changes);
2. otherwise the UTC date of ``max(st_mtime, st_ctime)``. ``st_ctime`` is set when a file
   is created or moved into the folder, so a copy that preserves an old mtime
   (``cp -p``, ``rsync -a``, camera imports) still lands on the day it arrived.

Hidden files and the partial-download suffixes of common tools are skipped: they are
files still being written, not arrivals.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

_DATE_DIR = re.compile(r"^\d{4}-\d{2}-\d{2}$")
PARTIAL_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp", ".filepart", "~")


@dataclass(frozen=True, slots=True)
class DropEntry:
    """One entry of the drop folder, as seen by ``lstat`` (links are not followed)."""

    rel: str  # POSIX path relative to the drop root
    path: Path  # absolute path
    size: int
    mtime_ns: int
    ctime_ns: int
    is_symlink: bool
    is_regular: bool

    @property
    def arrival_date(self) -> dt.date:
        return arrival_date(self.rel, self.mtime_ns, self.ctime_ns)


def arrival_date(rel: str, mtime_ns: int, ctime_ns: int) -> dt.date:
    """The partition date of a dropped file (see the module docstring)."""
    head = rel.split("/", 1)[0]
    if "/" in rel and _DATE_DIR.match(head):
        try:
            return dt.date.fromisoformat(head)
        except ValueError:
            pass  # e.g. 2026-13-40: not a date folder, fall through to timestamps
    seconds = max(mtime_ns, ctime_ns) / 1e9
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).date()


def is_ignored(name: str) -> bool:
    """Hidden files and partially downloaded files are not arrivals."""
    return name.startswith(".") or name.endswith(PARTIAL_SUFFIXES)


def scan_drop(root: Path) -> list[DropEntry]:
    """Every non-ignored entry below ``root``, sorted by relative path.

    Directories are walked without following symlinks; a symlink (to a file or a
    directory) is returned as an entry so that ``raw_media`` can reject it when it
    leads outside the root. A missing root yields nothing.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    entries: list[DropEntry] = []
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            iterator = os.scandir(current)
        except OSError:
            continue  # unreadable directory: its files surface once it becomes readable
        with iterator:
            for item in iterator:
                if is_ignored(item.name):
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished between listing and stat
                if stat.S_ISDIR(st.st_mode):
                    stack.append(Path(item.path))
                    continue
                rel = Path(item.path).relative_to(root).as_posix()
                entries.append(
                    DropEntry(
                        rel=rel,
                        path=Path(item.path),
                        size=st.st_size,
                        mtime_ns=st.st_mtime_ns,
                        ctime_ns=st.st_ctime_ns,
                        is_symlink=stat.S_ISLNK(st.st_mode),
                        is_regular=stat.S_ISREG(st.st_mode),
                    )
                )
    entries.sort(key=lambda e: e.rel)
    return entries


def entries_for_date(root: Path, day: dt.date) -> list[DropEntry]:
    """The drop entries whose arrival date is ``day``."""
    return [e for e in scan_drop(root) if e.arrival_date == day]


def confine(root: Path, candidate: Path) -> Path:
    """Resolve ``candidate`` and require it to stay inside ``root``.

    Raises ``ValueError`` for paths that escape the root through ``..`` or symlinks.
    """
    root_real = Path(os.path.realpath(root))
    real = Path(os.path.realpath(candidate))
    if real != root_real and root_real not in real.parents:
        raise ValueError(f"{candidate} resolves to {real}, outside {root_real}")
    return real
