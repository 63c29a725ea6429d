"""A video's audio through ffmpeg: 16 kHz mono FLAC, EBU R128 loudness, silence ratio, samples.

``extract_flac`` writes the first audio stream of a local video as a 16 kHz mono FLAC
(deterministic bytes for one ffmpeg build, so the FLAC's sha256 addresses it).
``analyse_flac`` runs one ffmpeg pass over that FLAC with ``ebur128`` (integrated
loudness, loudness range, true peak) and ``silencedetect`` chained, and parses their
summaries from stderr: what is measured is what Whisper hears. ``read_samples`` decodes
any audio file to float32 samples at 16 kHz mono. Every refusal is an ``AudioRejected``
with an ``AudioRejectReason``; nothing here knows storage or partitions.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from style_pipeline.contracts.speech import SAMPLE_RATE, AudioRejectReason, AudioSettings
from style_pipeline.media.errors import without_content
from style_pipeline.media.ffmpeg_bin import FfmpegTimeoutError, ffmpeg_exe, run_ffmpeg

_NO_AUDIO = ("matches no streams", "does not contain any stream", "Output file #0 does not "
             "contain any stream", "Output file does not contain any stream")  # fmt: skip
_SUMMARY = re.compile(r"Summary:(.*)", re.S)
_INTEGRATED = re.compile(r"I:\s+(-?[\d.]+|-?inf|nan)\s+LUFS")
_LRA = re.compile(r"LRA:\s+(-?[\d.]+|-?inf|nan)\s+LU")
_PEAK = re.compile(r"Peak:\s+(-?[\d.]+|-?inf|nan)\s+dBFS")
_SILENCE_START = re.compile(r"silence_start:\s*(-?[\d.e+-]+)")
_SILENCE_END = re.compile(r"silence_end:\s*(-?[\d.e+-]+)")
_DURATION = re.compile(r"time=(\d+):(\d{2}):(\d{2}(?:\.\d+)?)")


class AudioRejected(Exception):
    """A video whose audio cannot be used: ``reason`` is the stable code."""

    def __init__(self, reason: AudioRejectReason, detail: str):
        detail = without_content(detail, limit=2000)
        super().__init__(f"{reason.value}: {detail}")
        self.reason = AudioRejectReason(reason)
        self.detail = detail


@dataclass(frozen=True)
class AudioAnalysis:
    """What ffmpeg measured on a FLAC (None: not finite, e.g. digital silence's loudness)."""

    duration_ms: int
    integrated_lufs: float | None
    loudness_range_lu: float | None
    true_peak_dbtp: float | None
    silence_ratio: float


def _tail(stderr: bytes, limit: int = 1500) -> str:
    return stderr.decode("utf-8", "replace")[-limit:].strip()


def _run(args: list[str], timeout_s: float, what: str) -> bytes:
    """ffmpeg's stderr; a failure is ``no_audio``, ``timeout`` or ``decode_failed``."""
    try:
        done = run_ffmpeg([ffmpeg_exe(), "-hide_banner", "-nostdin", *args], timeout_s)
    except FfmpegTimeoutError as exc:
        raise AudioRejected(AudioRejectReason.TIMEOUT, f"{what}: {exc}") from None
    text = done.stderr.decode("utf-8", "replace")
    if done.returncode != 0:
        if any(marker in text for marker in _NO_AUDIO):
            raise AudioRejected(AudioRejectReason.NO_AUDIO, "the file has no audio stream")
        raise AudioRejected(
            AudioRejectReason.DECODE_FAILED, f"{what}: ffmpeg exit {done.returncode}: "
            f"{_tail(done.stderr)}",
        )  # fmt: skip
    return done.stderr


def extract_flac(video: Path, target: Path, settings: AudioSettings) -> Path:
    """The first audio stream of ``video`` as a 16 kHz mono FLAC at ``target``.

    ``-map_metadata -1`` and ``-fflags +bitexact`` keep tags and the encoder string out,
    so the bytes depend on the samples (and the ffmpeg build) only.
    """
    _run(
        ["-i", str(video), "-map", "0:a:0", "-vn", "-sn", "-dn", "-map_metadata", "-1",
         "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "flac", "-sample_fmt", "s16",
         "-fflags", "+bitexact", "-flags:a", "+bitexact", "-f", "flac", "-y", str(target)],
        settings.timeout_s, "audio extraction",
    )  # fmt: skip
    if not target.is_file() or target.stat().st_size == 0:
        raise AudioRejected(AudioRejectReason.NO_AUDIO, "ffmpeg wrote no audio")
    return target


def _finite(match: re.Match[str] | None) -> float | None:
    if match is None:
        return None
    value = float(match.group(1))
    return round(value, 2) if math.isfinite(value) else None


def parse_ebur128(stderr: str) -> tuple[float | None, float | None, float | None]:
    """(integrated LUFS, LRA LU, true peak dBTP) from ``ebur128``'s closing summary."""
    summary = _SUMMARY.search(stderr)
    if summary is None:
        return None, None, None
    text = summary.group(1)
    integrated = _finite(_INTEGRATED.search(text))
    if integrated is not None and integrated <= -70.0:
        integrated = None  # ebur128's floor: the absolute gate removed every block (silence)
    return integrated, _finite(_LRA.search(text)), _finite(_PEAK.search(text))


def silence_seconds(stderr: str, duration_s: float) -> float:
    """Seconds of silence from ``silencedetect``'s lines; a silence still open at the end
    runs to ``duration_s``."""
    starts = [float(m.group(1)) for m in _SILENCE_START.finditer(stderr)]
    ends = [float(m.group(1)) for m in _SILENCE_END.finditer(stderr)]
    total = 0.0
    for i, start in enumerate(starts):
        end = ends[i] if i < len(ends) else duration_s
        total += max(0.0, min(end, duration_s) - max(start, 0.0))
    return total


def _duration_s(stderr: str) -> float:
    """The last ``time=`` progress stamp: how much audio ffmpeg read."""
    stamps = _DURATION.findall(stderr)
    if not stamps:
        return 0.0
    hours, minutes, seconds = stamps[-1]
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


def analyse_flac(flac: Path, settings: AudioSettings) -> AudioAnalysis:
    """Loudness and silence of ``flac`` in one ffmpeg pass (``ebur128`` then
    ``silencedetect``, both pass the samples on unchanged)."""
    chain = (f"ebur128=peak=true:framelog=quiet,silencedetect=noise={settings.silence_noise_db}"
             f"dB:duration={settings.silence_min_s}")  # fmt: skip
    stderr = _run(
        ["-i", str(flac), "-af", chain, "-f", "null", "-"],
        settings.timeout_s, "audio analysis",
    ).decode("utf-8", "replace")  # fmt: skip
    samples = _flac_samples(flac)
    duration_s = samples / SAMPLE_RATE if samples is not None else _duration_s(stderr)
    if duration_s <= 0:
        raise AudioRejected(AudioRejectReason.EMPTY_AUDIO, "the audio stream holds no samples")
    integrated, lra, peak = parse_ebur128(stderr)
    silence = silence_seconds(stderr, duration_s)
    return AudioAnalysis(
        duration_ms=round(duration_s * 1000),
        integrated_lufs=integrated,
        loudness_range_lu=lra,
        true_peak_dbtp=peak,
        silence_ratio=round(min(1.0, silence / duration_s), 4),
    )


def _flac_samples(flac: Path) -> int | None:
    """Total samples from the FLAC STREAMINFO block (None: not a FLAC or unknown)."""
    with open(flac, "rb") as handle:
        head = handle.read(4 + 4 + 34)
    if len(head) < 42 or head[:4] != b"fLaC" or head[4] & 0x7F != 0:
        return None
    info = head[8:]
    total = ((info[13] & 0x0F) << 32) | int.from_bytes(info[14:18], "big")
    return total or None


def read_samples(path: Path, timeout_s: float = 900.0) -> np.ndarray:
    """Float32 samples of ``path`` at 16 kHz mono, in [-1, 1]; ``AudioRejected`` when
    ffmpeg cannot decode it."""
    try:
        done = run_ffmpeg(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-i", str(path), "-vn", "-ac", "1",
             "-ar", str(SAMPLE_RATE), "-f", "f32le", "-acodec", "pcm_f32le", "-"],
            timeout_s,
        )  # fmt: skip
    except FfmpegTimeoutError as exc:
        raise AudioRejected(AudioRejectReason.TIMEOUT, str(exc)) from None
    if done.returncode != 0:
        raise AudioRejected(AudioRejectReason.DECODE_FAILED, _tail(done.stderr))
    return np.frombuffer(done.stdout, dtype=np.float32).copy()
