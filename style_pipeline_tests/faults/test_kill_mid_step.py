"""kill -9 inside ``frames`` and inside ``embeddings``, then a re-run: as if nothing happened.

The run is a child process with its own roots; the test waits until the step has
demonstrably started writing (a frame JPEG, an embedding cache entry) while its table is
not there yet, SIGKILLs it, re-runs the same selection in a second child and compares every
stored file with a clean run's. Each kill and re-run happens once per module; the tests
below check one property each, so a known gap is marked on its own.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from style_pipeline.storage.store import temp_name
from style_pipeline_tests.faults.child_runs import Roots, wait_until
from style_pipeline_tests.faults.conftest import DAY, SELECT

pytestmark = pytest.mark.slow

# What Store's atomic local write leaves when killed between mkstemp and rename.
_STORE_TEMP = re.compile(r"(^|/)\.[^/]+\.[^/]+\.tmp$")


def stored_files(roots: Roots) -> list[str]:
    """Stored outputs: without the temp files a killed writer leaves (checked on their own)
    and without the hot-folder sensor's state (``raw_media/sensor/``), which records when
    each file was first seen: operational state, not an output of the run."""
    return [
        key
        for key in roots.files()
        if not _STORE_TEMP.search(key) and not key.startswith("raw_media/sensor/")
    ]


def assert_same_as_clean(rerun: Roots, clean: Roots) -> None:
    """Same keys with the same bytes under both storage roots, and unique ids."""
    assert stored_files(rerun) == stored_files(clean)  # nothing extra, nothing missing
    for key in stored_files(clean):
        assert (rerun.storage / key).read_bytes() == (clean.storage / key).read_bytes(), key
    ids = (("raw_media", "media_id"), ("frames", "frame_id"), ("embeddings", "frame_id"))
    for asset, column in ids:
        table = rerun.table(asset, DAY)
        assert table[column].is_duplicated().sum() == 0, f"duplicate {column} in {asset}"
        assert table.equals(clean.table(asset, DAY)), asset


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True)  # fmt: skip
    return int(child.stdout)


def kill_inside(roots: Roots, started: Callable[[], bool], step_table: str) -> None:
    proc = roots.start(DAY, SELECT)
    table = roots.storage / step_table
    wait_until(lambda: started() and not table.exists(), proc, deadline_s=90)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not table.exists(), "the step had finished before the kill: nothing was tested"


def new_roots(tmp_path_factory, media: Path, models: Path) -> Roots:
    return Roots(tmp_path_factory.mktemp("killed"), models).create(media)


@pytest.fixture(scope="module")
def killed_in_frames(tmp_path_factory, media, models, clean) -> Roots:
    """Roots whose run was SIGKILLed after its first frames, then re-run to completion."""
    roots = new_roots(tmp_path_factory, media, models)
    frames_dir = roots.storage / "frames" / DAY

    def published() -> list[Path]:
        if not frames_dir.is_dir():
            return []
        return [p for p in frames_dir.iterdir() if not p.name.startswith(".")]

    kill_inside(roots, lambda: bool(published()), f"frames/{DAY}.parquet")
    assert 0 < len(published()) < len(clean.table("frames", DAY))  # killed part-way through
    # A kill between creating the temp file and renaming it leaves exactly this file beside
    # the target (named after its dead writer); where the kill lands is up to the
    # scheduler, so the test leaves one as the kill would.
    leftover = temp_name(published()[0].name, dead_pid(), "0dead0beef0")
    (frames_dir / leftover).write_bytes(b"\xff\xd8 half a jpeg")
    roots.run(DAY, SELECT)
    return roots


@pytest.fixture(scope="module")
def killed_in_embeddings(tmp_path_factory, media, models, clean) -> Roots:
    """Roots whose run was SIGKILLed after its first embedding cache entries, then re-run."""
    roots = new_roots(tmp_path_factory, media, models)
    cache = roots.storage / "embeddings" / "cache"

    def cached() -> int:
        return sum(1 for p in cache.rglob("*.npy")) if cache.is_dir() else 0

    kill_inside(roots, lambda: cached() > 0, f"embeddings/{DAY}.parquet")
    assert 0 < cached() < len(clean.table("embeddings", DAY))  # killed part-way through
    roots.run(DAY, SELECT)
    return roots


def test_kill_mid_frames_then_rerun_equals_a_clean_run(killed_in_frames, clean):
    assert_same_as_clean(killed_in_frames, clean)


def test_kill_mid_embeddings_then_rerun_equals_a_clean_run(killed_in_embeddings, clean):
    assert_same_as_clean(killed_in_embeddings, clean)


def test_kill_mid_write_leaves_no_temp_file_in_storage_after_rerun(killed_in_frames):
    assert [key for key in killed_in_frames.files() if _STORE_TEMP.search(key)] == []


def test_kill_mid_frames_leaves_no_work_dir_after_rerun(killed_in_frames):
    # the killed run's frames work dir is stale once its process is dead: the re-run clears it
    assert killed_in_frames.files(killed_in_frames.tmp) == []


def test_kill_mid_embeddings_leaves_no_work_dir_after_rerun(killed_in_embeddings):
    assert killed_in_embeddings.files(killed_in_embeddings.tmp) == []
