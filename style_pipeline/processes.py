"""Whether a process exists: one answer for every "is its owner still alive?" question.

Used to tell a killed writer's leftovers (temp files in storage, scratch folders) and a
killed CLI run from work in progress. Standard library only, importable from any layer.
"""

from __future__ import annotations

import os
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def descendants(pid: int) -> set[int]:
    """Ids of every live process below ``pid`` (children, grandchildren, ...), from /proc
    (Linux; empty where /proc is missing)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found
