"""Whether a process exists: one answer for every "is its owner still alive?" question.

Used to tell a killed writer's leftovers (temp files in storage, scratch folders) and a
killed CLI run from work in progress. Standard library only, importable from any layer.
"""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True
