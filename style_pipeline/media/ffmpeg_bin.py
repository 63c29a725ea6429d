"""Locate and run ffmpeg: system ``ffmpeg`` on PATH, else the imageio-ffmpeg bundle.

``run_ffmpeg`` runs one ffmpeg child tied to this process: it gets its own process group
(a Ctrl-C meant for the pipeline reaches the pipeline, which then kills the group) and,
on Linux, a parent-death signal, so a ``kill -9`` of the pipeline kills ffmpeg too
instead of leaving it decoding for minutes. A child past its time limit is killed and
``FfmpegTimeoutError`` raised.
"""

from __future__ import annotations

import ctypes
import functools
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class FfmpegNotFoundError(RuntimeError):
    """Raised when neither a system ffmpeg nor imageio-ffmpeg's bundled binary is available."""


class FfmpegTimeoutError(RuntimeError):
    """ffmpeg ran past its time limit and was killed."""

    def __init__(self, timeout_s: float, stderr: bytes):
        super().__init__(f"ffmpeg ran longer than its limit of {timeout_s:.4g} s and was killed")
        self.timeout_s = timeout_s
        self.stderr = stderr


@functools.cache
def ffmpeg_exe() -> str:
    """Return the path of an ffmpeg executable (cached for the process).

    Prefers ``ffmpeg`` found on ``PATH``; falls back to ``imageio_ffmpeg.get_ffmpeg_exe()``.
    Raises ``FfmpegNotFoundError`` with install hints when neither is available.
    """
    system = shutil.which("ffmpeg")
    if system:
        return system
    try:
        import imageio_ffmpeg
    except ImportError as exc:
        raise FfmpegNotFoundError(
            "no ffmpeg on PATH and imageio-ffmpeg is not installed; "
            "install ffmpeg (apt-get install ffmpeg) or `pip install imageio-ffmpeg`"
        ) from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise FfmpegNotFoundError(
            f"no ffmpeg on PATH and imageio-ffmpeg has no usable binary: {exc}"
        ) from exc


def _death_signal_setter() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when its parent dies.

    Linux only (elsewhere None: the process group still lets the parent kill the child on
    any exception). libc's ``prctl`` is looked up here, in the parent, so the forked child
    only makes the call. The parent id is taken before the fork: a parent that died before
    ``prctl`` ran would not be signalled, so the child then exits at once. The signal
    follows the *thread* that forked; ``run_ffmpeg`` waits in that thread, so it lives
    as long as the child.
    """
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return set_death_signal


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass  # exited already


def run_ffmpeg(args: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    """Run ``args`` (an ffmpeg command line) to completion, capturing stdout and stderr.

    The child runs in its own process group with a parent-death signal (see the module
    docstring). Past ``timeout_s`` seconds, or on any exception in the waiting parent
    (KeyboardInterrupt included), the group is killed and reaped; a timeout raises
    ``FfmpegTimeoutError``.
    """
    proc = subprocess.Popen(
        list(args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
        preexec_fn=_death_signal_setter(),
    )
    try:
        stdout, stderr = proc.communicate(timeout=max(timeout_s, 0.001))
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        _, stderr = proc.communicate()
        raise FfmpegTimeoutError(timeout_s, stderr or b"") from None
    except BaseException:
        _kill_group(proc)
        proc.wait()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
