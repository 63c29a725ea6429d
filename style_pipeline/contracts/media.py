"""Contracts of the ingest group: ``raw_media`` and ``frames`` rows."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class MediaKind(StrEnum):
    VIDEO = "video"
    IMAGE = "image"
    CHAT = "chat"  # a chat log dropped with its video (``<video>.chat.<ext>`` or ``chat/``)
    UNKNOWN = "unknown"


class MediaStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class RejectReason(StrEnum):
    """Why a dropped file was not accepted. Stable codes: dashboards and tests key on them."""

    PATH_ESCAPE = "path_escape"  # symlink, hard link or path leading outside the drop root
    NOT_A_FILE = "not_a_file"  # socket, fifo, device, dangling link, folder named like media
    UNREADABLE = "unreadable"  # permission denied or I/O error (file or folder)
    EMPTY_FILE = "empty_file"
    TOO_LARGE = "too_large"
    UNSUPPORTED_TYPE = "unsupported_type"  # magic bytes are no image/video format we take
    EXTENSION_MISMATCH = "extension_mismatch"  # media extension, other content
    CORRUPT = "corrupt"  # container or codec failed to decode
    TRUNCATED = "truncated"  # the file ends early
    DECOMPRESSION_BOMB = "decompression_bomb"
    RESOLUTION_TOO_LARGE = "resolution_too_large"
    TOO_LONG = "too_long"
    NO_VIDEO_STREAM = "no_video_stream"
    DUPLICATE_CONTENT = "duplicate_content"  # same sha256 already accepted
    TIMEOUT = "timeout"  # probing or extraction ran past its time limit
    HIDDEN = "hidden"  # dot file or dot folder: never ingested


class RawMediaRecord(BaseModel):
    """One row per dropped file of the partition, accepted or rejected."""

    model_config = ConfigDict(extra="forbid")

    media_id: str = Field(description="sha256 of the file bytes ('' when unreadable)")
    source_name: str = Field(description="path relative to the drop root")
    kind: MediaKind
    status: MediaStatus
    reject_reason: RejectReason | None = None
    reject_detail: str | None = Field(None, description="human-readable explanation")
    duplicate_of: str | None = Field(None, description="source or partition holding the original")
    size_bytes: int = 0
    arrival_date: dt.date
    object_path: str | None = Field(
        None, description="storage-relative key of the immutable copy (or quarantine copy)"
    )
    extension: str = ""
    format_name: str | None = None
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    duration_s: float | None = None
    fps: float | None = None
    frame_count: int | None = None
    has_audio: bool | None = None
    exif_camera: str | None = None
    exif_datetime: str | None = None
    exif_orientation: int | None = None
    exif_has_gps: bool | None = None
    chat_video: str | None = Field(
        None, description="chat logs: source name of the video the log belongs to (None: missing)"
    )
    chat_video_media_id: str | None = Field(
        None, description="chat logs: media_id (sha256) of that video"
    )


class FrameRecord(BaseModel):
    """One extracted video frame or standardized still."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str = Field(description="content address: sha256 of media_id and position")
    media_id: str
    source_name: str
    kind: MediaKind
    mode: str = Field(description="scene | keyframes | interval | still")
    timestamp_s: float
    path: str = Field(description="storage-relative key of the JPEG")
    width: int
    height: int
    sha256: str = Field(description="sha256 of the saved JPEG bytes")
    scene_score: float | None = None
