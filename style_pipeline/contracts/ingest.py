"""Ingest contracts: limits of ``raw_media``, ``frames`` extraction and the hot-folder sensor."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from style_pipeline.contracts.sections import Section


class IngestSettings(Section):
    max_file_mb: float = Field(4096, gt=0)
    max_video_seconds: float = Field(3600, gt=0)
    max_image_pixels: int = Field(89_478_485, gt=0)
    max_video_pixels: int = Field(7680 * 4608, gt=0)
    quarantine_max_mb: float = Field(256, ge=0)
    probe_timeout_s: float = Field(120, gt=0, description="wall-clock limit of one probe")


class FrameSettings(Section):
    mode: Literal["scene", "keyframes", "interval"] = "scene"
    scene_threshold: float = Field(0.30, gt=0, lt=1)
    min_scene_gap_s: float = Field(0.5, ge=0)
    interval_s: float = Field(2.0, gt=0)
    max_frames_per_video: int = Field(120, gt=0)
    analysis_width: int = Field(320, ge=32)
    scene_detector: Literal["ffmpeg", "combined"] = Field(
        "combined",
        description="ffmpeg: scene score > scene_threshold only; combined: also cuts that "
        "change the picture's structure but not its brightness, dissolves and fades "
        "(media/scene_cuts.py)",
    )
    structure_threshold: float = Field(
        0.5, gt=0, le=2, description="combined: block dissimilarity (1 - correlation) of a cut"
    )
    gradual_transitions: bool = Field(
        True, description="combined: one frame per dissolve or fade, at its end"
    )
    include_first_frame: bool = True
    still_max_edge: int = Field(2048, ge=64)
    jpeg_quality: int = Field(95, ge=50, le=100)
    workers: int = Field(
        0,
        ge=0,
        description="processes standardising stills (0: one per CPU, 1: in the step); "
        "videos run one at a time (ffmpeg threads its own decoding)",
    )
    # ffmpeg's time limit per video: floor + per_media_s * duration, at most max_s (also
    # used when the duration is unknown); past it ffmpeg is killed and the file fails
    # ``timeout``.
    ffmpeg_timeout_floor_s: float = Field(60, gt=0)
    ffmpeg_timeout_per_media_s: float = Field(2.0, ge=0)
    ffmpeg_timeout_max_s: float = Field(2 * 3600 + 60, gt=0)


class SensorSettings(Section):
    settle_seconds: float = Field(10, ge=0)
    minimum_interval_seconds: int = Field(30, ge=1)
    hash_budget_seconds: float = Field(30, gt=0)
