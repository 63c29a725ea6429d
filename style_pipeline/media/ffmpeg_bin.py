"""Locate an ffmpeg executable: system ``ffmpeg`` on PATH, else the imageio-ffmpeg bundle."""

from __future__ import annotations

import functools
import shutil


class FfmpegNotFoundError(RuntimeError):
    """Raised when neither a system ffmpeg nor imageio-ffmpeg's bundled binary is available."""


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
