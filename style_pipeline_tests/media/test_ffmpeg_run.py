"""ffmpeg children: time limits from the media duration, killed past them, tied to us.

Issue 17: item 2 (every ffmpeg call had no timeout) and item 7a (a killed pipeline left
ffmpeg running).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.contracts.media import RejectReason
from style_pipeline.media.extract import failure_reason
from style_pipeline.media.ffmpeg_bin import FfmpegTimeoutError, run_ffmpeg
from style_pipeline.media.frames import FrameTimeoutError, extract_video_frames, time_limit_s
from style_pipeline_tests.media.factories import make_video

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def processes_with(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue  # exited while we looked
        if marker in cmdline and state not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.mark.parametrize(
    ("settings", "duration", "expected"),
    [
        (FrameSettings(), 10.0, 60 + 2.0 * 10),
        (FrameSettings(), 300.0, 660.0),
        (FrameSettings(), None, 7260.0),  # unknown duration: the maximum
        (FrameSettings(), 0.0, 7260.0),
        (FrameSettings(), 10 * 3600.0, 7260.0),  # capped
        (FrameSettings(ffmpeg_timeout_floor_s=5, ffmpeg_timeout_per_media_s=0), 100.0, 5.0),
    ],
)
def test_time_limit_follows_the_duration(settings, duration, expected):
    assert time_limit_s(settings, duration) == pytest.approx(expected)


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("limits") / "limit_clip.mp4", seconds=4)


@linux_only
@pytest.mark.parametrize("mode", ["scene", "keyframes", "interval"])
def test_extraction_past_its_limit_is_killed_and_fails_timeout(tmp_path, clip, mode):
    tiny = FrameSettings(mode=mode, ffmpeg_timeout_floor_s=0.001, ffmpeg_timeout_per_media_s=0)
    with pytest.raises(FrameTimeoutError) as caught:
        extract_video_frames(clip, tmp_path / "out", tiny)
    assert "limit_clip.mp4: ffmpeg ran past the time limit of 0.001 s" in str(caught.value)
    assert failure_reason(caught.value) is RejectReason.TIMEOUT
    assert processes_with(str(clip)) == []  # the child was killed and reaped
    assert list((tmp_path / "out").iterdir()) == []


def test_extraction_within_its_limit_passes(tmp_path, clip):
    settings = FrameSettings(ffmpeg_timeout_floor_s=60, ffmpeg_timeout_per_media_s=0)
    assert len(extract_video_frames(clip, tmp_path, settings, duration_s=4.0)) >= 1


@linux_only
def test_child_has_its_own_process_group_and_a_parent_death_signal():
    probe = (
        "import ctypes, os; sig = ctypes.c_int(); "
        "ctypes.CDLL(None).prctl(2, ctypes.byref(sig), 0, 0, 0); "  # PR_GET_PDEATHSIG
        "print(os.getpid(), os.getpgrp(), sig.value)"
    )
    proc = run_ffmpeg([sys.executable, "-c", probe], timeout_s=60)
    pid, pgrp, death_signal = map(int, proc.stdout.split())
    assert pgrp == pid != os.getpgrp()
    assert death_signal == signal.SIGKILL


@linux_only
def test_timeout_kills_the_whole_group(tmp_path):
    marker = f"sleeper-{tmp_path.name}"
    # A child that starts a grandchild in the same group, then both sleep.
    script = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)', '{marker}']); "
        "time.sleep(60)"
    )
    with pytest.raises(FfmpegTimeoutError) as caught:
        run_ffmpeg([sys.executable, "-c", script, marker], timeout_s=1.0)
    assert caught.value.timeout_s == 1.0
    assert processes_with(marker) == []
