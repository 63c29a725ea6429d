"""Scan the hot folder and assign each file to the UTC date it arrived.

Arrival date rule (one function shared by the sensor and ``raw_media``):

1. a file under a top-level folder named ``YYYY-MM-DD`` belongs to that date
   (``style-pipeline drop`` and backfills use this; it never changes);
2. otherwise the UTC date of ``max(st_mtime, st_ctime)``. ``st_ctime`` is set when a file
   is created or moved into the folder, so a copy that preserves an old mtime
   (``cp -p``, ``rsync -a``, camera imports) still lands on the day it arrived.

The partial-download suffixes of common tools are skipped silently: they are files still
being written, not arrivals. Entries that are never ingested but that a user would expect
to be (dot files and dot folders, a folder named like a media file, a folder that cannot
be listed) come back from ``scan_drop_all`` as ``SkippedEntry`` with a reason code, so
``raw_media`` records why nothing happened to them; ``scan_drop`` returns the files only.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from style_pipeline.contracts.media import RejectReason
from style_pipeline.media.sniff import IMAGE_EXTENSIONS, MEDIA_EXTENSIONS

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


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """An entry of the drop folder that is not ingested, and why (a ``RejectReason``)."""

    rel: str  # POSIX path relative to the drop root ("." for the root itself)
    path: Path
    reason: RejectReason
    detail: str
    mtime_ns: int
    ctime_ns: int

    @property
    def arrival_date(self) -> dt.date:
        return arrival_date(self.rel, self.mtime_ns, self.ctime_ns)


@dataclass(frozen=True)
class DropScan:
    """The files of the drop folder (``entries``) and the entries skipped with a reason."""

    entries: list[DropEntry] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)


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


def is_partial(name: str) -> bool:
    """A file still being downloaded or copied by a tool that renames it when done."""
    return name.endswith(PARTIAL_SUFFIXES)


def is_hidden(name: str) -> bool:
    """Dot files and dot folders are never ingested (``.DS_Store``, ``.git``, ``._x.jpg``)."""
    return name.startswith(".")


def is_ignored(name: str) -> bool:
    """Hidden files and partially downloaded files are not arrivals."""
    return is_hidden(name) or is_partial(name)


def skip_reason(name: str, is_dir: bool) -> tuple[RejectReason, str] | None:
    """Why an entry named ``name`` is recorded but not ingested; None when it is not.

    Partial downloads are neither ingested nor recorded (they are still arriving).
    """
    kind = "folder" if is_dir else "file"
    if is_hidden(name):
        return RejectReason.HIDDEN, f"hidden {kind} (its name starts with a dot): not ingested"
    suffix = PurePosixPath(name).suffix.lower()
    if is_dir and suffix in MEDIA_EXTENSIONS:
        media = "an image" if suffix in IMAGE_EXTENSIONS else "a video"
        return RejectReason.NOT_A_FILE, (
            f"a folder named like {media} file ({suffix}); the files inside it are "
            "scanned on their own"
        )
    return None


def unreadable_reason(exc: OSError) -> tuple[RejectReason, str]:
    """The record of a folder that cannot be listed (permission denied, I/O error)."""
    why = exc.strerror or type(exc).__name__
    return RejectReason.UNREADABLE, (
        f"the folder cannot be listed ({why}); its files are ingested once it is readable"
    )


def _entry(root: Path, path: Path, st: os.stat_result) -> DropEntry:
    return DropEntry(
        rel=path.relative_to(root).as_posix(),
        path=path,
        size=st.st_size,
        mtime_ns=st.st_mtime_ns,
        ctime_ns=st.st_ctime_ns,
        is_symlink=stat.S_ISLNK(st.st_mode),
        is_regular=stat.S_ISREG(st.st_mode),
    )


def _skipped(
    root: Path, path: Path, st: os.stat_result, why: tuple[RejectReason, str]
) -> SkippedEntry:
    rel = path.relative_to(root).as_posix()
    return SkippedEntry(rel, path, why[0], why[1], st.st_mtime_ns, st.st_ctime_ns)


def scan_drop_all(root: Path) -> DropScan:
    """Every entry below ``root``: the files, and the entries skipped with a reason.

    Directories are walked without following symlinks; a symlink (to a file or a
    directory) is returned as an entry so that ``raw_media`` can reject it when it
    leads outside the root. Hidden folders are not walked. A missing root yields nothing.
    Both lists are sorted by relative path.
    """
    root = Path(root)
    if not root.is_dir():
        return DropScan()
    scan = DropScan()
    skipped: dict[str, SkippedEntry] = {}  # by rel: an unreadable x.mp4/ is recorded once
    stack = [(root, os.stat(root))]
    while stack:
        current, current_st = stack.pop()
        try:
            iterator = os.scandir(current)
        except OSError as exc:
            entry = _skipped(root, current, current_st, unreadable_reason(exc))
            skipped[entry.rel] = entry
            continue
        with iterator:
            for item in iterator:
                if is_partial(item.name):
                    continue
                try:
                    st = item.stat(follow_symlinks=False)
                except OSError:
                    continue  # vanished between listing and stat
                is_dir = stat.S_ISDIR(st.st_mode)
                why = skip_reason(item.name, is_dir)
                if why is not None:
                    entry = _skipped(root, Path(item.path), st, why)
                    skipped[entry.rel] = entry
                if is_dir and not is_hidden(item.name):
                    stack.append((Path(item.path), st))
                elif why is None:
                    scan.entries.append(_entry(root, Path(item.path), st))
    scan.entries.sort(key=lambda e: e.rel)
    scan.skipped.extend(skipped[rel] for rel in sorted(skipped))
    return scan


def scan_drop(root: Path) -> list[DropEntry]:
    """Every file entry below ``root`` (what may be ingested), sorted by relative path."""
    return scan_drop_all(root).entries


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
