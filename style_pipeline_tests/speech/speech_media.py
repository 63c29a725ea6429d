"""Generated media with speech for the speech tests: espeak-ng speech muxed by ffmpeg."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from style_pipeline.media.ffmpeg_bin import ffmpeg_exe

SENTENCE = "Good question. I think the answer is yes, we will stream again tomorrow."


def speech_wav(path: Path, text: str = SENTENCE, voice: str | None = None) -> Path:
    """``text`` spoken by espeak-ng into a WAV (the test is skipped without espeak-ng);
    ``voice`` (e.g. ``en-us+klatt3``) and 150 words a minute, else espeak-ng's default."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    path.parent.mkdir(parents=True, exist_ok=True)
    voiced = ["-v", voice, "-s", "150"] if voice else []
    subprocess.run([espeak, *voiced, "-w", str(path), text], check=True, capture_output=True)
    return path


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args],
                   check=True, capture_output=True)  # fmt: skip


def wav_seconds(path: Path) -> float:
    """Duration of a PCM WAV from its header."""
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def half_silent_video(path: Path, wav: Path) -> float:
    """An MP4 (H.264 + AAC) whose audio is the speech then as much silence; its duration."""
    speech = wav_seconds(wav)
    total = round(2 * speech, 3)
    path.parent.mkdir(parents=True, exist_ok=True)
    _ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=128x96:r=10", "-i", str(wav),
            "-filter_complex", f"[1:a]apad=whole_dur={total}[a]", "-map", "0:v", "-map", "[a]",
            "-t", str(total), "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
            str(path))  # fmt: skip
    return total


def video_without_audio(path: Path, seconds: float = 2.0) -> Path:
    """An MP4 with a video stream only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _ffmpeg("-f", "lavfi", "-i", "color=c=red:s=128x96:r=10", "-t", str(seconds),
            "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path
