"""``kill -9`` of a process extracting frames: ffmpeg dies with it, the next run cleans up.

Issue 17, item 7: the ffmpeg child kept running and a ``frames_*`` folder stayed in the
system temp folder. A child Python process runs the real ``frames`` stage on a 30 s clip
that ffmpeg reads at its native rate (``-re``): ffmpeg would run for 30 s whatever the
machine's speed. Once it shows in /proc the child is killed; ffmpeg must be gone well
before the clip's end. (Stopping ffmpeg with SIGSTOP would not do: a stopped member of an
orphaned process group gets SIGHUP from the kernel, which ends it without any fix.)
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.media.workdirs import work_root
from style_pipeline.stages.frames import extract_partition
from style_pipeline.storage.store import Store
from style_pipeline_tests.media.factories import make_video

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

DAY = "2026-03-02"
CHILD = """
import json, sys
import ffmpeg
_input = ffmpeg.input
ffmpeg.input = lambda *a, **k: _input(*a, re=None, **k)  # read at the clip's own rate
from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.stages.frames import extract_partition
from style_pipeline.storage.store import Store
extract_partition([json.loads(sys.argv[2])], Store(sys.argv[1]), sys.argv[3], FrameSettings())
"""


def _children(pid: int) -> list[tuple[int, str, str]]:
    """(pid, state, argv[0]) of the processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            argv0 = (entry / "cmdline").read_bytes().split(b"\0", 1)[0].decode()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append((int(entry.name), fields[0], argv0))
    return found


def _state(pid: int) -> str | None:
    """The /proc state letter of ``pid``; None once it is gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _pgrp(pid: int) -> int | None:
    try:
        return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError):
        return None


def test_kill_9_mid_extraction_kills_ffmpeg_and_next_run_cleans(tmp_path, monkeypatch):
    clip = make_video(tmp_path / "long.mp4", seconds=30, size=(64, 48), fps=10)
    store = Store(str(tmp_path / "storage"))
    media_id = hashlib.sha256(clip.read_bytes()).hexdigest()
    key = store.put_file(clip, f"raw_media/objects/{media_id}.mp4")
    row = {"media_id": media_id, "source_name": "long.mp4", "kind": "video", "object_path": key}
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "storage"), json.dumps(row), DAY], env=env
    )
    ffmpeg_pid = None
    try:
        deadline = time.monotonic() + 60
        while ffmpeg_pid is None and time.monotonic() < deadline and child.poll() is None:
            # The extraction's ffmpeg leads its own process group (a version check that
            # imageio-ffmpeg may run first does not).
            running = [
                pid
                for pid, _, argv0 in _children(child.pid)
                if "ffmpeg" in argv0 and _pgrp(pid) == pid
            ]
            ffmpeg_pid = running[0] if running else None
            time.sleep(0.01)
        assert ffmpeg_pid is not None, f"ffmpeg never started (child exit {child.poll()})"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)

        deadline = time.monotonic() + 10
        while _state(ffmpeg_pid) not in (None, "Z", "X") and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _state(ffmpeg_pid) in (None, "Z", "X"), "ffmpeg outlived its parent"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if ffmpeg_pid is not None and _state(ffmpeg_pid) not in (None, "Z", "X"):
            os.kill(ffmpeg_pid, signal.SIGKILL)  # only the one this test made

    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    root = work_root()
    left = sorted(p.name for p in root.iterdir())
    assert left and all(name.startswith(f"{child.pid}-") for name in left), left
    assert any(name.startswith(f"{child.pid}-frames_") for name in left)

    result = extract_partition([], store, DAY, FrameSettings())  # the next run
    assert result.frames == [] and result.failures == []
    assert list(root.iterdir()) == []
    assert list(temp.iterdir()) == [root]  # nothing else was left in the temp folder
