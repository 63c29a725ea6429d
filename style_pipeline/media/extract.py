"""Frames of one local media file: video frames by the configured mode, or the standardized still.

``extract_local`` writes the JPEGs into a work folder and describes them; it knows
nothing about storage or partitions (the ``frames`` stage in ``stages/frames.py`` uploads
them and builds the records). ``failure_reason`` maps a decoding error to its
``RejectReason`` code.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from style_pipeline.contracts.ingest import FrameSettings
from style_pipeline.contracts.media import MediaKind, RejectReason
from style_pipeline.media.frames import ExtractedFrame, FrameTimeoutError, extract_video_frames
from style_pipeline.media.stills import standardize_still

STILL_MODE = "still"


def failure_reason(exc: Exception) -> RejectReason:
    """The reject code of a file whose frames could not be extracted."""
    if isinstance(exc, Image.DecompressionBombError):
        return RejectReason.DECOMPRESSION_BOMB
    if isinstance(exc, FrameTimeoutError):
        return RejectReason.TIMEOUT
    return RejectReason.CORRUPT


def extract_local(
    kind: MediaKind,
    local: Path,
    work: Path,
    settings: FrameSettings,
    duration_s: float | None = None,
) -> tuple[str, list[ExtractedFrame]]:
    """Frames of one local file, written under ``work``: (mode, frames).

    ``duration_s`` (a video's, from ``raw_media``) sets ffmpeg's time limit."""
    if kind is MediaKind.VIDEO:
        return settings.mode, extract_video_frames(local, work, settings, duration_s)
    target = work / "still.jpg"
    width, height = standardize_still(
        local, target, max_edge=settings.still_max_edge, jpeg_quality=settings.jpeg_quality
    )
    return STILL_MODE, [ExtractedFrame(0.0, target, width, height, None)]
