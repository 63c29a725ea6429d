"""Chat contracts: the ``chat:`` section and the rows of the ``chat_events`` table.

A chat log arrives in the drop folder next to its video (``<video stem>.chat.<ext>``, or
yt-dlp's ``<video stem>.live_chat.json``) or under a ``chat/`` folder, and ``raw_media``
keeps it as an original of kind ``chat`` with the video it belongs to. ``chat_events``
reads each one with the adapter of its format and emits one row per message (accepted,
on the video clock) and one per line it refused (with a ``ChatRejectReason``); a log
whose video is missing or that cannot be read is one rejected row with ``line_no`` 0.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class ChatFormat(StrEnum):
    """File formats the adapters read (``raw_media``'s ``format_name`` of a chat log)."""

    TWITCH_IRC = "twitch_irc"  # bracketed Twitch logs and raw IRC lines with tags
    YOUTUBE_LIVE_CHAT = "youtube_live_chat"  # yt-dlp's .live_chat.json (JSON lines)
    GENERIC_JSONL = "generic_jsonl"  # one JSON object per line, fields from chat.generic
    GENERIC_CSV = "generic_csv"  # a header row, columns from chat.generic


class ChatSource(StrEnum):
    """The ``source`` column: where the messages were written."""

    TWITCH_IRC = "twitch_irc"
    YOUTUBE_LIVE_CHAT = "youtube_live_chat"
    GENERIC = "generic"


SOURCE_OF_FORMAT = {
    ChatFormat.TWITCH_IRC: ChatSource.TWITCH_IRC,
    ChatFormat.YOUTUBE_LIVE_CHAT: ChatSource.YOUTUBE_LIVE_CHAT,
    ChatFormat.GENERIC_JSONL: ChatSource.GENERIC,
    ChatFormat.GENERIC_CSV: ChatSource.GENERIC,
}


class ChatEventStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class ChatRejectReason(StrEnum):
    """Why a chat log or one of its lines gave no event. Stable codes."""

    VIDEO_MISSING = "video_missing"  # file: no video of that stem arrived in the partition
    UNREADABLE = "unreadable"  # file: the stored copy cannot be read
    UNKNOWN_FORMAT = "unknown_format"  # file: no adapter recognises the content
    MALFORMED = "malformed"  # line: does not parse in the file's format (or not UTF-8)
    NOT_A_MESSAGE = "not_a_message"  # line: join/ping/notice/membership/deletion, no text
    MISSING_FIELD = "missing_field"  # line: no user, or a mapped field is absent
    NO_TIMESTAMP = "no_timestamp"  # line: a message without any time
    BAD_TIMESTAMP = "bad_timestamp"  # line: a time that does not parse
    EMPTY_TEXT = "empty_text"  # line: the message is blank
    TEXT_TOO_LONG = "text_too_long"  # line: longer than chat.max_text_chars
    OUTSIDE_VIDEO = "outside_video"  # line: before the video starts or after it ends
    DUPLICATE_EVENT = "duplicate_event"  # line: the same message id earlier in the file


class GenericChatMapping(BaseModel):
    """``chat.generic``: which fields of a JSONL object / CSV column hold what."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_field: str = Field("ts_ms", description="field of the time (JSONL: dotted path)")
    time_unit: Literal["ms", "s", "iso"] = Field(
        "ms", description="ms or s: numbers; iso: ISO-8601 date-times (always wall clock)"
    )
    time_base: Literal["video", "epoch"] = Field(
        "video", description="video: offsets from the video's start; epoch: Unix time"
    )
    user_field: str = Field("user", description="field of the user name")
    text_field: str = Field("text", description="field of the message text")
    id_field: str | None = Field("id", description="field of the message id (None: line number)")
    csv_delimiter: str = Field(",", min_length=1, max_length=1)


class ChatSettings(BaseModel):
    """``chat:`` section of configs/base.yml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    format: Literal["auto", "twitch_irc", "youtube_live_chat", "generic_jsonl", "generic_csv"] = (
        Field("auto", description="auto: the format raw_media detected from the content")
    )
    user_salt: str = Field(
        "",
        description="salt of the user-name hash (sha256); set it through the environment "
        "STYLE_PIPELINE_CHAT__USER_SALT. Changing it changes every user_hash",
    )
    clock_offsets_ms: dict[str, int] = Field(
        default_factory=dict,
        description="ms added to every message time on the video clock, keyed by video stem "
        "or by source (twitch_irc, youtube_live_chat, generic); the stem wins",
    )
    stream_starts: dict[str, dt.datetime] = Field(
        default_factory=dict,
        description="video stem -> wall-clock time of the video's first frame, for logs with "
        "wall-clock times; else the file's '# stream_start: <ISO>' line, else its first message",
    )
    max_text_chars: int = Field(500, ge=1, description="longer messages: text_too_long")
    video_end_slack_ms: int | None = Field(
        2000,
        ge=0,
        description="messages later than the video's end plus this are outside_video "
        "(None: no upper bound); messages before 0 always are",
    )
    generic: GenericChatMapping = GenericChatMapping()

    @field_validator("stream_starts")
    @classmethod
    def _aware(cls, value: dict[str, dt.datetime]) -> dict[str, dt.datetime]:
        return {k: v if v.tzinfo else v.replace(tzinfo=dt.UTC) for k, v in value.items()}


class ChatEventRecord(BaseModel):
    """One chat message on the video clock (accepted), or a line / file refused (rejected)."""

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(description="sha256 of chat_id, line_no and item")
    media_id: str = Field(description="media_id of the video the chat belongs to ('' missing)")
    ts_ms: int | None = Field(None, description="time on the video clock, ms from its start")
    user_hash: str | None = Field(None, description="salted sha256 of the user name (16 hex)")
    text: str | None = None
    source: str = Field(description="twitch_irc | youtube_live_chat | generic")
    raw_id: str = Field(description="the message id in the log, else 'L<line_no>'")
    status: ChatEventStatus
    reason: ChatRejectReason | None = None
    detail: str | None = Field(None, description="why, in words (never the line's content)")
    chat_id: str = Field(description="media_id (sha256) of the chat log file")
    chat_source_name: str = Field(description="the chat log's path relative to the drop root")
    format: str = Field(description="ChatFormat of the file")
    line_no: int = Field(description="1-based line (CSV: record) number; 0: the whole file")
    item: int = Field(0, description="index of the message within its line (YouTube actions)")
    file_ts_ms: int | None = Field(
        None, description="the time as written: Unix ms (wall clock) or ms from the start"
    )
    clock: str | None = Field(None, description="wall | relative: how file_ts_ms is meant")
