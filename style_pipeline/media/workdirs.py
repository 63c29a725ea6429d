"""Scratch folders of frame extraction, all under one known root, and their cleanup.

Every scratch folder lives in ``<system temp>/style_pipeline-work-<uid>/`` and is named
``<pid>-<prefix><random>``. While it is in use its owner holds an exclusive ``flock`` on
the ``.owner.lock`` file inside it; the kernel drops the lock when the owner exits, even
by ``kill -9``. ``clean_stale_work_dirs`` (run at the start of the ``frames`` stage)
removes the folders whose lock is free, so a killed run leaves nothing behind for long.
The lock, not the pid, decides: a pid can be reused, or belong to another container
that shares the temp folder. A folder without a lock file (its owner died before taking
it, or was killed while setting it up) is stale when its owner pid is gone.

The root is per user and private (0700, owned by us, not a symlink): a shared temp
folder must not let another user plant or read our frames.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from style_pipeline.processes import pid_alive

log = logging.getLogger(__name__)

LOCK_NAME = ".owner.lock"


def work_root() -> Path:
    """The folder that holds every scratch folder of this user (created, checked)."""
    root = Path(tempfile.gettempdir()) / f"style_pipeline-work-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise RuntimeError(f"{root} is not a folder owned by this user; remove it and retry")
    return root


def owner_pid(name: str) -> int | None:
    """The pid a scratch folder name starts with (``1234-frames_x``, ``.1234-frames_x``)."""
    head = name.removeprefix(".").split("-", 1)[0]
    return int(head) if head.isdigit() else None


@contextlib.contextmanager
def work_dir(prefix: str) -> Iterator[Path]:
    """A fresh scratch folder under ``work_root()``, locked while in use, removed after.

    The folder is made and locked under a hidden name (``.<pid>-...``), then renamed: a
    cleaner never sees a visible folder whose lock is not yet taken.
    """
    root = work_root()
    hidden = Path(tempfile.mkdtemp(prefix=f".{os.getpid()}-{prefix}", dir=root))
    path = hidden
    try:
        fd = os.open(hidden / LOCK_NAME, os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            path = root / hidden.name[1:]
            hidden.rename(path)
            yield path
        finally:
            os.close(fd)  # releases the lock
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _is_stale(path: Path) -> bool:
    """True when no live process owns ``path`` (see the module docstring)."""
    if path.name.startswith("."):  # being set up: its lock may not be taken yet
        pid = owner_pid(path.name)
        return pid is not None and pid != os.getpid() and not pid_alive(pid)
    try:
        fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        pid = owner_pid(path.name)
        return pid is not None and pid != os.getpid() and not pid_alive(pid)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its owner is running
    finally:
        os.close(fd)  # a lock taken here is dropped at once; the folder goes next
    return True


def clean_stale_work_dirs(root: Path | None = None) -> list[Path]:
    """Remove the scratch folders of processes that are gone; the folders removed."""
    root = work_root() if root is None else Path(root)
    removed: list[Path] = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.is_symlink() and _is_stale(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        log.info("removed %d stale work folder(s) under %s", len(removed), root)
    return removed
