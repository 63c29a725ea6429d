"""Scratch folders under one root, locked while used, stale ones removed (issue 17, 7b)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from style_pipeline.media.workdirs import (
    LOCK_NAME,
    clean_stale_work_dirs,
    owner_pid,
    work_dir,
    work_root,
)


@pytest.fixture(autouse=True)
def private_temp(tmp_path, monkeypatch):
    """Every test gets its own system temp folder (``tempfile.gettempdir()``)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    return int(proc.stdout)


@pytest.mark.parametrize(
    ("name", "pid"),
    [("123-frames_ab", 123), (".123-extract-x", 123), ("frames_x", None), ("-1-x", None)],
)
def test_owner_pid(name, pid):
    assert owner_pid(name) == pid


def test_work_dir_lives_under_the_root_and_is_removed(private_temp):
    with work_dir("frames_") as path:
        assert path.parent == work_root() == private_temp / f"style_pipeline-work-{os.getuid()}"
        assert path.name.startswith(f"{os.getpid()}-frames_")
        assert (path / LOCK_NAME).exists()
        assert clean_stale_work_dirs() == []  # in use: kept
    assert not path.exists()
    assert oct(work_root().stat().st_mode & 0o777) == "0o700"


def test_dirs_of_dead_owners_are_removed(private_temp):
    root = work_root()
    gone = dead_pid()
    unlocked = root / f"{gone}-frames_old"  # its owner was killed: the lock is free
    unlocked.mkdir()
    (unlocked / LOCK_NAME).touch()
    (unlocked / "frame_000000000.jpg").write_bytes(b"jpeg")
    no_lock = root / f"{gone}-extract-old"  # killed before taking the lock
    no_lock.mkdir()
    half_made = root / f".{gone}-frames_new"  # killed while setting up
    half_made.mkdir()
    alive_setup = root / f".{os.getppid()}-frames_new"  # a live owner setting up
    alive_setup.mkdir()
    assert sorted(clean_stale_work_dirs()) == sorted([unlocked, no_lock, half_made])
    assert sorted(root.iterdir()) == [alive_setup]


def test_a_dir_locked_by_another_live_process_is_kept(private_temp):
    with work_dir("frames_") as path:
        # Another process looks: our lock is held, whatever the pid in the name says.
        script = (
            "import sys, tempfile; tempfile.tempdir = sys.argv[1]; "
            "from style_pipeline.media.workdirs import clean_stale_work_dirs; "
            "print(len(clean_stale_work_dirs()))"
        )
        out = subprocess.run([sys.executable, "-c", script, str(private_temp)], check=True,
                             capture_output=True, text=True)  # fmt: skip
        assert out.stdout.strip() == "0"
        assert path.exists()


def test_a_planted_root_is_refused(private_temp):
    planted = private_temp / f"style_pipeline-work-{os.getuid()}"
    planted.symlink_to(private_temp)  # a link another user could leave in a shared /tmp
    with pytest.raises(RuntimeError, match="not a folder owned by this user"):
        work_root()
