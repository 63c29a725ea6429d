"""Every file under a prefix with its size and write time, and deleting many keys at once.

What retention needs from a storage root beyond ``Store``: a recursive listing (one
paginated LIST on S3, a directory walk locally) and a batch delete (S3 ``DeleteObjects``,
up to 1,000 keys a request). Write times come from the filesystem: ``mtime`` locally,
``LastModified`` on S3, ``created`` in ``memory://``. Names starting with a dot (a write in
progress, see ``store.temp_name``) are never listed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from style_pipeline.storage.s3_errors import s3_errors_explained
from style_pipeline.storage.store import Store, check_key

_BATCH = 1000  # S3 DeleteObjects takes at most 1,000 keys


@dataclass(frozen=True, slots=True)
class StoredFile:
    """One file of the store: its key, size in bytes and when it was written (UTC)."""

    key: str
    size: int
    modified: dt.datetime | None


def _modified(info: dict[str, Any]) -> dt.datetime | None:
    for field in ("LastModified", "mtime", "created"):
        value = info.get(field)
        if isinstance(value, dt.datetime):
            return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
        if isinstance(value, int | float):
            return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return None


def list_files(store: Store, prefix: str) -> list[StoredFile]:
    """Every file under ``prefix`` (any depth), sorted by key; [] when there is none."""
    base = store.path(check_key(prefix.strip("/")))
    fs = base.fs
    root = store.root.path.rstrip("/")
    with s3_errors_explained(store.root):
        if hasattr(fs, "invalidate_cache"):
            fs.invalidate_cache(base.path)  # S3 listings are cached: list what is there now
        try:
            found: dict[str, dict[str, Any]] = fs.find(base.path, detail=True, withdirs=False)
        except FileNotFoundError:
            return []
    files = []
    for name, info in found.items():
        name = name.rstrip("/")
        if info.get("type") == "directory" or not name.startswith(f"{root}/"):
            continue
        key = name[len(root) + 1 :]
        if any(part.startswith(".") for part in key.split("/")):
            continue
        files.append(StoredFile(key, int(info.get("size") or 0), _modified(info)))
    return sorted(files, key=lambda f: f.key)


def delete_keys(store: Store, keys: Iterable[str], remove_empty_folders: bool = True) -> int:
    """Delete ``keys`` (files; missing ones are ignored); return how many were asked for.

    On S3 in ``DeleteObjects`` batches, elsewhere one file at a time. Locally, with
    ``remove_empty_folders``, folders left empty are removed up to (not including) the
    root, so a deleted day leaves no empty ``<asset>/<day>/`` behind (pass False where a
    writer may be creating a file in one of them right now: a cache's shard folders).
    """
    keys = sorted(set(keys))
    paths = [store.path(key) for key in keys]
    if not paths:
        return 0
    fs = paths[0].fs
    with s3_errors_explained(store.root):
        if "s3" in fs.protocol:
            for start in range(0, len(paths), _BATCH):
                fs.rm([p.path for p in paths[start : start + _BATCH]])
            fs.invalidate_cache(store.root.path)
        else:
            for path in paths:
                with contextlib.suppress(FileNotFoundError):
                    fs.rm_file(path.path)
    if store.is_local and remove_empty_folders:
        _remove_empty_folders(store, keys)
    return len(keys)


def _remove_empty_folders(store: Store, keys: list[str]) -> None:
    root = Path(store.root.path)
    folders = {Path(store.local_path(key)).parent for key in keys}
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        while folder != root and root in folder.parents:
            try:
                folder.rmdir()
            except OSError:  # not empty (or already gone): its parents are not empty either
                break
            folder = folder.parent
