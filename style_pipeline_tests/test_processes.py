"""pid_alive: this process is alive, a reaped child is not."""

from __future__ import annotations

import os
import subprocess
import sys

from style_pipeline.processes import pid_alive


def test_own_process_is_alive_and_a_reaped_child_is_not():
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert pid_alive(os.getpid())
    assert not pid_alive(int(child.stdout))
    assert pid_alive(1)  # init: another user's process counts as alive
