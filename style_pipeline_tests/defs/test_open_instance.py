"""Several commands opening one fresh DAGSTER_HOME at once all get a working instance."""

from __future__ import annotations

import os
import subprocess
import sys
import time

CHILD = (
    "import sys, time; from style_pipeline.defs.run import open_instance;"
    "time.sleep(max(0.0, float(sys.argv[1]) - time.time()));"
    "open_instance().get_runs(limit=1)"
)


def test_concurrent_opens_of_a_fresh_home_do_not_race(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "home")}
    (tmp_path / "home").mkdir()
    start = str(time.time() + 4.0)  # every child imports first, then opens at the same moment
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, start], env=env, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    errors = [child.communicate(timeout=120)[1].decode()[-1500:] for child in children]
    assert [child.returncode for child in children] == [0] * 6, errors
