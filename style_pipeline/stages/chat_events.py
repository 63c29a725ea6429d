"""The ``chat_events`` stage: the day's chat logs to one table of messages on the video clock.

Reads every accepted ``raw_media`` row of kind ``chat`` (its stored original and the video
``raw_media`` associated with it), parses it with the adapter of its format
(``speech.chat_formats``), puts each message on the video's clock (``chat.stream_starts``,
the file's stream start or its first message; plus ``chat.clock_offsets_ms``), hashes the
user names with ``chat.user_salt`` and checks text and bounds. Every message is a row:
accepted, or rejected with a ``ChatRejectReason``; a log whose video is missing, whose
copy cannot be read or whose format is unknown is one rejected row with ``line_no`` 0.
Nothing is fatal: one bad log or line never stops the others.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import polars as pl

from style_pipeline.contracts.chat import (
    SOURCE_OF_FORMAT,
    ChatEventRecord,
    ChatEventStatus,
    ChatFormat,
    ChatRejectReason,
    ChatSettings,
)
from style_pipeline.contracts.media import MediaKind, MediaStatus, RejectReason
from style_pipeline.media.ledger import ChecksumLedger
from style_pipeline.media.sniff import chat_video_stem
from style_pipeline.speech.chat_formats import (
    ChatLine,
    detect_format,
    hash_user,
    parse_chat,
    to_video_clock,
    with_reason,
)
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema, records_to_frame

CHAT_EVENTS_SCHEMA = polars_schema(ChatEventRecord)
_log = logging.getLogger(__name__)
R = ChatRejectReason


@dataclass(frozen=True)
class ChatFileFacts:
    """One chat log: its format, clock origin and counts (or why it gave nothing)."""

    source_name: str
    video: str | None
    format: str
    clock: str  # config | file | first_message | relative | '' (file rejected)
    offset_ms: int
    accepted: int
    rejected: int
    reason: str | None = None


@dataclass(frozen=True)
class ChatEventsFacts:
    """What the ``chat_events`` asset reports besides the table."""

    files: tuple[ChatFileFacts, ...] = ()
    salted: bool = False
    by_reason: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, int] = field(default_factory=dict)

    @property
    def accepted(self) -> int:
        return sum(f.accepted for f in self.files)

    @property
    def rejected(self) -> int:
        return sum(f.rejected for f in self.files)

    @property
    def files_rejected(self) -> int:
        return sum(1 for f in self.files if f.reason is not None)


def empty_chat_events_table() -> pl.DataFrame:
    """A ``chat_events`` table with no rows and every column typed."""
    return pl.DataFrame(schema=CHAT_EVENTS_SCHEMA)


def event_id(chat_id: str, line_no: int, item: int) -> str:
    """Content address of one message: the log's sha256 and the message's place in it."""
    return hashlib.sha256(f"{chat_id}:{line_no}:{item}".encode()).hexdigest()


def _file_reject(row: dict, video_id: str, fmt: str, reason: R, detail: str) -> ChatEventRecord:
    return ChatEventRecord(
        event_id=event_id(row["media_id"], 0, 0),
        media_id=video_id,
        source=SOURCE_OF_FORMAT[ChatFormat(fmt)].value if fmt in set(ChatFormat) else "",
        raw_id="L0",
        status=ChatEventStatus.REJECTED,
        reason=reason,
        detail=detail,
        chat_id=row["media_id"],
        chat_source_name=row["source_name"],
        format=fmt,
        line_no=0,
    )


def _video_stem(row: dict) -> str:
    video = row.get("chat_video")
    if video:
        return PurePosixPath(video).stem
    return chat_video_stem(row["source_name"]) or PurePosixPath(row["source_name"]).stem


def _check(
    line: ChatLine, ts_ms: int | None, config: ChatSettings, end_ms: int | None, seen: set[str]
) -> ChatLine:
    """Refusals that need the video clock or the whole file: text, bounds, duplicates."""
    if not line.ok:
        return line
    text = (line.text or "").strip()
    if not text:
        return with_reason(line, R.EMPTY_TEXT, "the message is blank")
    if len(text) > config.max_text_chars:
        detail = f"{len(text)} characters > chat.max_text_chars {config.max_text_chars}"
        return with_reason(line, R.TEXT_TOO_LONG, detail)
    if ts_ms is not None and ts_ms < 0:
        return with_reason(line, R.OUTSIDE_VIDEO, f"{ts_ms} ms: before the video starts")
    if ts_ms is not None and end_ms is not None and ts_ms > end_ms:
        return with_reason(line, R.OUTSIDE_VIDEO, f"{ts_ms} ms: after the video ends ({end_ms})")
    if line.raw_id is not None:
        if line.raw_id in seen:
            return with_reason(line, R.DUPLICATE_EVENT, "the same message id earlier in the log")
        seen.add(line.raw_id)
    return line


def read_chat_file(
    row: dict, data: bytes, video_id: str, end_ms: int | None, config: ChatSettings
) -> tuple[list[ChatEventRecord], ChatFileFacts]:
    """The rows of one stored chat log (``row`` is its ``raw_media`` row)."""
    name = row["source_name"]
    extension = PurePosixPath(name).suffix.lower()
    wanted = config.format if config.format != "auto" else row.get("format_name")
    fmt = ChatFormat(wanted) if wanted in set(ChatFormat) else detect_format(data, extension)
    if fmt is None:
        detail = "no chat format recognised (Twitch IRC, YouTube live chat, JSONL, CSV)"
        record = _file_reject(row, video_id, "", R.UNKNOWN_FORMAT, detail)
        return [record], ChatFileFacts(
            name, row.get("chat_video"), "", "", 0, 0, 1, R.UNKNOWN_FORMAT.value
        )
    source = SOURCE_OF_FORMAT[fmt].value
    stem = _video_stem(row)
    offset = config.clock_offsets_ms.get(stem, config.clock_offsets_ms.get(source, 0))
    start = config.stream_starts.get(stem)
    start_ms = round(start.timestamp() * 1000) if start is not None else None
    parsed = parse_chat(data, fmt, config.generic)
    placed, origin = to_video_clock(parsed, offset, start_ms)
    seen: set[str] = set()
    records = []
    for item in placed:
        line = _check(item.line, item.ts_ms, config, end_ms, seen)
        records.append(
            ChatEventRecord(
                event_id=event_id(row["media_id"], line.line_no, line.item),
                media_id=video_id,
                ts_ms=item.ts_ms,
                user_hash=hash_user(line.user, config.user_salt, source) if line.user else None,
                text=line.text.strip() if line.ok and line.text is not None else None,
                source=source,
                raw_id=line.raw_id or f"L{line.line_no}",
                status=ChatEventStatus.ACCEPTED if line.ok else ChatEventStatus.REJECTED,
                reason=line.reason,
                detail=line.detail,
                chat_id=row["media_id"],
                chat_source_name=name,
                format=fmt.value,
                line_no=line.line_no,
                item=line.item,
                file_ts_ms=line.time_ms,
                clock=line.clock,
            )
        )
    accepted = sum(1 for r in records if r.status is ChatEventStatus.ACCEPTED)
    facts = ChatFileFacts(
        name, row.get("chat_video"), fmt.value, origin, offset, accepted, len(records) - accepted
    )
    return records, facts


def chat_rows(rows: list[dict]) -> list[dict]:
    """The chat logs to read: the accepted ones, and duplicates of a log seen on an earlier
    day that arrived again with a video accepted today (a video that was missing then);
    each content once, by source name."""
    accepted = MediaStatus.ACCEPTED.value
    new_videos = {
        r["media_id"]
        for r in rows
        if r.get("kind") == MediaKind.VIDEO.value and r["status"] == accepted
    }
    chats = [
        r
        for r in rows
        if r.get("kind") == MediaKind.CHAT.value
        and (
            r["status"] == accepted
            or (
                r.get("reject_reason") == RejectReason.DUPLICATE_CONTENT.value
                and r.get("chat_video_media_id") in new_videos
            )
        )
    ]
    chats.sort(key=lambda r: (r["status"] != accepted, r["source_name"]))
    seen: set[str] = set()
    out = []
    for r in chats:
        if r["media_id"] not in seen:
            seen.add(r["media_id"])
            out.append(r)
    return sorted(out, key=lambda r: r["source_name"])


def _stored_key(row: dict, store: Store) -> str | None:
    """Where the log's bytes are: its own copy, or (a duplicate) the original's."""
    if row["status"] == MediaStatus.ACCEPTED.value:
        return row.get("object_path")
    ledger = ChecksumLedger(store)
    days = ledger.partitions(row["media_id"])
    return ledger.entry(row["media_id"], days[0]).object_path if days else None


def chat_events_partition(
    raw_media: pl.DataFrame, store: Store, config: ChatSettings
) -> tuple[pl.DataFrame, ChatEventsFacts]:
    """The day's ``chat_events`` table from its ``raw_media`` rows, and facts.

    Accepted rows first in (chat log, line, item) order, each log's rows together.
    """
    if "kind" not in raw_media.columns or raw_media.is_empty():
        return empty_chat_events_table(), ChatEventsFacts(salted=bool(config.user_salt))
    rows = raw_media.to_dicts()
    durations = {
        r["media_id"]: r.get("duration_s")
        for r in rows
        if r.get("kind") == MediaKind.VIDEO.value and r.get("media_id")
    }
    records: list[ChatEventRecord] = []
    files: list[ChatFileFacts] = []
    for row in chat_rows(rows):
        found, facts = _one_file(row, store, config, durations)
        records += found
        files.append(facts)
    table = records_to_frame(records, ChatEventRecord) if records else empty_chat_events_table()
    rejected = Counter(r.reason.value for r in records if r.reason is not None)
    sources = Counter(r.source for r in records if r.status is ChatEventStatus.ACCEPTED)
    return table, ChatEventsFacts(
        files=tuple(files),
        salted=bool(config.user_salt),
        by_reason=dict(sorted(rejected.items())),
        by_source=dict(sorted(sources.items())),
    )


def _one_file(
    row: dict, store: Store, config: ChatSettings, durations: dict[str, float | None]
) -> tuple[list[ChatEventRecord], ChatFileFacts]:
    name, fmt = row["source_name"], row.get("format_name") or ""
    video_id = row.get("chat_video_media_id") or ""

    def rejected(reason: R, detail: str) -> tuple[list[ChatEventRecord], ChatFileFacts]:
        _log.warning("chat log %r: %s (%s)", name, reason.value, detail)
        record = _file_reject(row, video_id, fmt, reason, detail)
        return [record], ChatFileFacts(name, row.get("chat_video"), fmt, "", 0, 0, 1, reason.value)

    if not video_id:
        stem = chat_video_stem(name) or PurePosixPath(name).stem
        where = "anywhere in the drop" if "/chat/" in f"/{name}" else "beside the log"
        return rejected(
            R.VIDEO_MISSING,
            f"no video named {stem}.<ext> arrived {where} on the log's date; drop the log "
            "with (or after) its video",
        )
    key = None
    try:
        key = _stored_key(row, store)
        if key is None:
            return rejected(R.UNREADABLE, "no stored copy of the log (not in the ledger)")
        data = store.read_bytes(key)
    except Exception as exc:  # a missing or unreadable copy must not fail the partition
        return rejected(R.UNREADABLE, f"{type(exc).__name__} reading {key}")
    duration = durations.get(video_id)
    end_ms = None
    if duration is not None and config.video_end_slack_ms is not None:
        end_ms = round(duration * 1000) + config.video_end_slack_ms
    try:
        return read_chat_file(row, data, video_id, end_ms, config)
    except Exception as exc:  # an adapter bug on one file must not fail the partition
        _log.exception("chat log %r could not be parsed", name)
        return rejected(R.MALFORMED, f"the adapter failed: {type(exc).__name__}")
