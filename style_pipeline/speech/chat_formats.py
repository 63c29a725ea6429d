"""Chat log adapters: Twitch IRC logs, YouTube live-chat JSON lines, generic JSONL/CSV.

Every adapter turns the bytes of one log into ``ChatLine``s: a message (time as written,
user name, text, message id) or a refusal (``ChatRejectReason`` and a detail that never
quotes the line: chat logs hold user names). Blank lines and ``#`` comments are skipped.
``to_video_clock`` then puts the messages on the video's clock.

Formats (``ChatFormat``):

- ``twitch_irc``: bracketed logs, one message a line, the user as ``<user>`` or ``user:``:
  ``[2026-11-30 12:00:01] <user> text`` (wall clock, optional ``UTC``/``Z``),
  ``[0:01:02] user: text`` (offset from the start, TwitchDownloader), ``[12:00:01] user:
  text`` under Chatterino's ``# Start logging at 2026-11-30 12:00:00`` header (time of
  day); and raw IRC with tags ``@badge-info=;...;tmi-sent-ts=1764504001000 :user!user@
  user.tmi.twitch.tv PRIVMSG #chan :text`` (also after a bracketed time). Only PRIVMSG
  lines are messages (``/me`` actions included).
- ``youtube_live_chat``: the JSON lines yt-dlp writes as ``.live_chat.json``: each a
  ``replayChatItemAction`` with ``videoOffsetTimeMsec`` (video clock) and actions whose
  ``addChatItemAction`` item is a text or paid message (runs of text and emoji); lines
  of a live capture (``addChatItemAction`` with ``timestampUsec`` only) are wall clock.
- ``generic_jsonl`` / ``generic_csv``: the fields named by ``chat.generic``.

A file's wall-clock start may be given on a line ``# stream_start: 2026-11-30T12:00:00Z``
(JSONL: ``{"stream_start": "..."}``).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from style_pipeline.contracts.chat import ChatFormat, ChatRejectReason, GenericChatMapping
from style_pipeline.media.sniff import sniff_chat

Clock = Literal["wall", "relative"]
R = ChatRejectReason


@dataclass(frozen=True, slots=True)
class ChatLine:
    """One message of a log, or one refused line (``reason`` set)."""

    line_no: int
    item: int = 0
    time_ms: int | None = None  # as written: Unix ms (wall) or ms from the start (relative)
    clock: Clock | None = None
    user: str | None = None
    text: str | None = None
    raw_id: str | None = None
    reason: ChatRejectReason | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass
class ParsedChat:
    """The lines of one log and the wall-clock stream start it states (Unix ms), if any."""

    format: ChatFormat
    lines: list[ChatLine] = field(default_factory=list)
    stream_start_ms: int | None = None


def _reject(line_no: int, reason: ChatRejectReason, detail: str, item: int = 0) -> ChatLine:
    return ChatLine(line_no=line_no, item=item, reason=reason, detail=detail)


def hash_user(name: str, salt: str, source: str) -> str:
    """Salted sha256 of a user name (case-folded, per source), first 16 hex digits."""
    digest = hashlib.sha256(f"{salt}\x00{source}\x00{name.strip().casefold()}".encode())
    return digest.hexdigest()[:16]


def detect_format(data: bytes, extension: str) -> ChatFormat | None:
    """The format of a log from its head (the same rule ``raw_media`` applies)."""
    found = sniff_chat(data[:65536], extension)
    return ChatFormat(found) if found else None


# Times -----------------------------------------------------------------------------------

_STREAM_START = re.compile(r"^#\s*stream[_ ]start\s*[:=]\s*(\S.*)$", re.IGNORECASE)
_CHATTERINO_START = re.compile(
    r"^#\s*Start logging at (\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2}:\d{2})\s*(\S+)?", re.IGNORECASE
)


def parse_wall(text: str) -> int:
    """Unix ms of an ISO-8601-like date-time (naive: UTC); ValueError when it is none."""
    value = text.strip()
    if value.upper().endswith(" UTC"):
        value = value[:-4]
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    stamp = dt.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return round(stamp.timestamp() * 1000)


def _parse_hms(text: str) -> int:
    """ms of ``H:MM:SS`` / ``MM:SS`` (optional ``.fff``); ValueError otherwise."""
    parts = text.split(":")
    if not 2 <= len(parts) <= 3 or not all(parts):
        raise ValueError(text)
    *hm, sec = parts
    seconds = float(sec)
    if (
        not 0 <= seconds < 60
        or any(not p.isdigit() for p in hm)
        or any(int(p) >= 60 for p in hm[1:])
    ):
        raise ValueError(text)
    total = 0
    for p in hm:
        total = total * 60 + int(p)
    return round((total * 60 + seconds) * 1000)


def _stream_start(line: str) -> int | None:
    match = _STREAM_START.match(line)
    if match:
        try:
            return parse_wall(match.group(1))
        except ValueError:
            return None
    return None


def _lines(data: bytes) -> Iterator[tuple[int, str | None]]:
    """(1-based number, text) of each line; text None when it is not UTF-8."""
    for number, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            yield number, None
            continue
        yield number, text.lstrip("\ufeff").rstrip("\r")


def _json_objects(data: bytes, parsed: ParsedChat) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each JSON-object line; a ``# stream start`` comment sets
    ``parsed.stream_start_ms`` and any other line is rejected into ``parsed.lines``."""
    for line_no, text in _lines(data):
        if text is None:
            parsed.lines.append(_reject(line_no, R.MALFORMED, "line is not UTF-8 text"))
            continue
        line = text.strip()
        if not line or line.startswith("#"):
            if line and (start := _stream_start(line)) is not None:
                parsed.stream_start_ms = start
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            parsed.lines.append(_reject(line_no, R.MALFORMED, f"not JSON ({exc.msg})"))
            continue
        if not isinstance(obj, dict):
            parsed.lines.append(_reject(line_no, R.MALFORMED, "not a JSON object"))
            continue
        yield line_no, obj


# Twitch IRC --------------------------------------------------------------------------------

_BRACKET = re.compile(r"^\[([^\]]{1,40})\]\s*(.*)$")
_ANGLE_USER = re.compile(r"^<[@+%~&]?([^>\s]{1,40})>\s?(.*)$")
_COLON_USER = re.compile(r"^([^\s:<>\[\]]{1,40})(?:\s\(([A-Za-z0-9_]{1,40})\))?:\s?(.*)$")
_TAG_ESCAPES = {"s": " ", ":": ";", "\\": "\\", "r": "\r", "n": "\n"}


def _unescape_tag(value: str) -> str:
    return re.sub(r"\\(.)?", lambda m: _TAG_ESCAPES.get(m.group(1) or "", m.group(1) or ""), value)


@dataclass(frozen=True, slots=True)
class IrcMessage:
    tags: dict[str, str]
    nick: str | None
    command: str
    params: list[str]
    trailing: str | None


def parse_irc(line: str) -> IrcMessage:
    """One IRCv3 line (tags, prefix, command, params, trailing); ValueError when malformed."""
    rest = line
    tags: dict[str, str] = {}
    if rest.startswith("@"):
        raw_tags, _, rest = rest[1:].partition(" ")
        for pair in raw_tags.split(";"):
            key, _, value = pair.partition("=")
            if key:
                tags[key] = _unescape_tag(value)
    nick = None
    rest = rest.lstrip(" ")
    if rest.startswith(":"):
        prefix, _, rest = rest[1:].partition(" ")
        nick = prefix.split("!", 1)[0] or None
    head, sep, trailing = rest.partition(" :")
    words = head.split()
    if not words or not re.fullmatch(r"[A-Za-z]+|\d{3}", words[0]):
        raise ValueError("no IRC command")
    return IrcMessage(tags, nick, words[0].upper(), words[1:], trailing if sep else None)


def _irc_line(line_no: int, body: str, bracket_ms: int | None, clock: Clock | None) -> ChatLine:
    try:
        msg = parse_irc(body)
    except ValueError:
        return _reject(line_no, R.MALFORMED, "raw IRC line without a command")
    if msg.command != "PRIVMSG":
        return _reject(line_no, R.NOT_A_MESSAGE, f"IRC {msg.command}, not a PRIVMSG")
    if msg.trailing is None or not msg.params:
        return _reject(line_no, R.MALFORMED, "PRIVMSG without a channel or text")
    user = msg.tags.get("login") or msg.nick or msg.tags.get("display-name")
    if not user:
        return _reject(line_no, R.MISSING_FIELD, "PRIVMSG without a user (no prefix)")
    text = msg.trailing
    if text.startswith("\x01ACTION ") and text.endswith("\x01"):
        text = text[8:-1]  # /me
    time_ms, line_clock = bracket_ms, clock
    sent = msg.tags.get("tmi-sent-ts")
    if sent is not None:
        if not sent.isdigit():
            return _reject(line_no, R.BAD_TIMESTAMP, "tmi-sent-ts is not a Unix time in ms")
        time_ms, line_clock = int(sent), "wall"
    if time_ms is None:
        return _reject(line_no, R.NO_TIMESTAMP, "PRIVMSG without tmi-sent-ts or a bracketed time")
    return ChatLine(line_no, 0, time_ms, line_clock, user, text, msg.tags.get("id") or None)


def _bracket_time(stamp: str, day: dt.date | None) -> tuple[int, Clock]:
    """A bracketed time: a full date-time (wall), or H:MM:SS (relative, or time of day on
    ``day`` under a Chatterino header); ValueError when it is neither."""
    value = stamp.strip()
    if re.match(r"^\d{4}-\d{2}-\d{2}", value):
        return parse_wall(value), "wall"
    ms = _parse_hms(value)
    if day is not None:
        midnight = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
        return round(midnight.timestamp() * 1000) + ms, "wall"
    return ms, "relative"


def parse_twitch(data: bytes) -> ParsedChat:
    parsed = ParsedChat(ChatFormat.TWITCH_IRC)
    day: dt.date | None = None  # Chatterino: the date of the "Start logging" header
    last_ms: int | None = None
    for line_no, text in _lines(data):
        if text is None:
            parsed.lines.append(_reject(line_no, R.MALFORMED, "line is not UTF-8 text"))
            continue
        line = text.strip()
        if not line:
            continue
        if line.startswith("#"):
            if (start := _stream_start(line)) is not None:
                parsed.stream_start_ms = start
            elif match := _CHATTERINO_START.match(line):
                day = dt.date.fromisoformat(match.group(1))
                last_ms = None
            continue
        if line.startswith(("@", ":", "PING", "PONG")):
            parsed.lines.append(_irc_line(line_no, line, None, None))
            continue
        match = _BRACKET.match(line)
        if not match:
            parsed.lines.append(_reject(line_no, R.MALFORMED, "no [time] at the start of the line"))
            continue
        stamp, body = match.groups()
        try:
            time_ms, clock = _bracket_time(stamp, day)
        except ValueError:
            parsed.lines.append(_reject(line_no, R.BAD_TIMESTAMP, "the [time] does not parse"))
            continue
        if day is not None and clock == "wall" and not re.match(r"^\d{4}-", stamp.strip()):
            if last_ms is not None and time_ms < last_ms - 12 * 3600 * 1000:
                time_ms += 24 * 3600 * 1000  # past midnight
                day = day + dt.timedelta(days=1)
            last_ms = time_ms
        if body.startswith(("@", ":")):
            parsed.lines.append(_irc_line(line_no, body, time_ms, clock))
            continue
        if angle := _ANGLE_USER.match(body):
            user, message = angle.groups()
        elif colon := _COLON_USER.match(body):
            display, login, message = colon.groups()
            user = login or display  # "Display (login): text" names the login
        else:
            parsed.lines.append(_reject(line_no, R.NOT_A_MESSAGE, "no <user> or user: (a notice)"))
            continue
        parsed.lines.append(ChatLine(line_no, 0, time_ms, clock, user, message, None))
    return parsed


# YouTube live chat -------------------------------------------------------------------------

_MESSAGE_RENDERERS = ("liveChatTextMessageRenderer", "liveChatPaidMessageRenderer")


def _runs_text(message: Any) -> str:
    if not isinstance(message, dict):
        return ""
    if "simpleText" in message:
        return str(message["simpleText"])
    out = []
    for run in message.get("runs") or []:
        if not isinstance(run, dict):
            continue
        if "text" in run:
            out.append(str(run["text"]))
        elif isinstance(run.get("emoji"), dict):
            emoji = run["emoji"]
            shortcuts = emoji.get("shortcuts") or []
            out.append(str(shortcuts[0]) if shortcuts else str(emoji.get("emojiId", "")))
    return "".join(out)


def _youtube_item(line_no: int, item_no: int, action: Any, offset_ms: int | None) -> ChatLine:
    if not isinstance(action, dict):
        return _reject(line_no, R.MALFORMED, "an action is not an object", item_no)
    add = action.get("addChatItemAction")
    if not isinstance(add, dict):
        kind = next(iter(action), "empty action")
        return _reject(line_no, R.NOT_A_MESSAGE, f"{kind}, not addChatItemAction", item_no)
    item = add.get("item")
    if not isinstance(item, dict) or not item:
        return _reject(line_no, R.MALFORMED, "addChatItemAction without an item", item_no)
    renderer_name = next(iter(item))
    if renderer_name not in _MESSAGE_RENDERERS:
        return _reject(line_no, R.NOT_A_MESSAGE, f"{renderer_name}, not a text message", item_no)
    renderer = item[renderer_name]
    if not isinstance(renderer, dict):
        return _reject(line_no, R.MALFORMED, f"{renderer_name} is not an object", item_no)
    author = renderer.get("authorExternalChannelId") or _runs_text(renderer.get("authorName"))
    if not author:
        return _reject(
            line_no, R.MISSING_FIELD, "no authorExternalChannelId or authorName", item_no
        )
    text = _runs_text(renderer.get("message"))
    raw_id = renderer.get("id")
    if offset_ms is not None:
        return ChatLine(line_no, item_no, offset_ms, "relative", author, text, raw_id)
    usec = renderer.get("timestampUsec")
    if usec is None:
        return _reject(line_no, R.NO_TIMESTAMP, "no videoOffsetTimeMsec or timestampUsec", item_no)
    try:
        wall_ms = int(usec) // 1000
    except (TypeError, ValueError):
        return _reject(line_no, R.BAD_TIMESTAMP, "timestampUsec is not an integer", item_no)
    return ChatLine(line_no, item_no, wall_ms, "wall", author, text, raw_id)


def parse_youtube(data: bytes) -> ParsedChat:
    parsed = ParsedChat(ChatFormat.YOUTUBE_LIVE_CHAT)
    for line_no, obj in _json_objects(data, parsed):
        replay = obj.get("replayChatItemAction")
        if isinstance(replay, dict):
            actions = replay.get("actions")
            raw_offset = replay.get("videoOffsetTimeMsec")
            try:
                offset_ms = int(raw_offset) if raw_offset is not None else None
            except (TypeError, ValueError):
                parsed.lines.append(_reject(line_no, R.BAD_TIMESTAMP, "videoOffsetTimeMsec"))
                continue
        elif "addChatItemAction" in obj or obj.get("actions"):
            actions = obj.get("actions") or [obj]
            offset_ms = None
        else:
            kind = next(iter(obj), "empty object")
            parsed.lines.append(_reject(line_no, R.NOT_A_MESSAGE, f"{kind}, not a chat action"))
            continue
        if not isinstance(actions, list) or not actions:
            parsed.lines.append(_reject(line_no, R.MALFORMED, "no actions list"))
            continue
        parsed.lines += [_youtube_item(line_no, i, a, offset_ms) for i, a in enumerate(actions)]
    return parsed


# Generic JSONL / CSV ---------------------------------------------------------------------


def _field(obj: dict, path: str) -> Any:
    value: Any = obj
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _generic_time(value: Any, mapping: GenericChatMapping) -> tuple[int, Clock]:
    """A mapped time value in ms and its clock; ValueError when it does not parse."""
    if mapping.time_unit == "iso":
        return parse_wall(str(value)), "wall"
    if isinstance(value, bool):
        raise ValueError(value)
    number = float(value)
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(value)
    ms = round(number * (1000 if mapping.time_unit == "s" else 1))
    return ms, ("wall" if mapping.time_base == "epoch" else "relative")


def _generic_row(line_no: int, row: dict, mapping: GenericChatMapping) -> ChatLine:
    getter = _field if not isinstance(row, _FlatRow) else (lambda r, k: r.get(k))
    raw_time = getter(row, mapping.time_field)
    if raw_time is None or raw_time == "":
        return _reject(line_no, R.NO_TIMESTAMP, f"no {mapping.time_field!r}")
    try:
        time_ms, clock = _generic_time(raw_time, mapping)
    except (TypeError, ValueError):
        return _reject(line_no, R.BAD_TIMESTAMP, f"{mapping.time_field!r} does not parse")
    user = getter(row, mapping.user_field)
    if user is None or str(user).strip() == "":
        return _reject(line_no, R.MISSING_FIELD, f"no {mapping.user_field!r}")
    text = getter(row, mapping.text_field)
    if text is None:
        return _reject(line_no, R.MISSING_FIELD, f"no {mapping.text_field!r}")
    if not isinstance(text, str | int | float):
        return _reject(line_no, R.MALFORMED, f"{mapping.text_field!r} is not text")
    raw_id = getter(row, mapping.id_field) if mapping.id_field else None
    return ChatLine(
        line_no,
        0,
        time_ms,
        clock,
        str(user),
        str(text),
        None if raw_id in (None, "") else str(raw_id),
    )


class _FlatRow(dict):
    """A CSV row: column names are looked up as they are (no dotted paths)."""


def parse_generic_jsonl(data: bytes, mapping: GenericChatMapping) -> ParsedChat:
    parsed = ParsedChat(ChatFormat.GENERIC_JSONL)
    for line_no, obj in _json_objects(data, parsed):
        if set(obj) == {"stream_start"}:
            try:
                parsed.stream_start_ms = parse_wall(str(obj["stream_start"]))
            except ValueError:
                parsed.lines.append(_reject(line_no, R.BAD_TIMESTAMP, "stream_start"))
            continue
        parsed.lines.append(_generic_row(line_no, obj, mapping))
    return parsed


def parse_generic_csv(data: bytes, mapping: GenericChatMapping) -> ParsedChat:
    parsed = ParsedChat(ChatFormat.GENERIC_CSV)
    text = data.decode("utf-8", errors="replace").lstrip("\ufeff")
    body: list[str] = []
    for line in text.splitlines(keepends=True):  # '# stream_start:' comments before the header
        if not body and line.startswith("#"):
            if (start := _stream_start(line.strip())) is not None:
                parsed.stream_start_ms = start
            body.append("\n")  # keeps csv line numbers equal to file line numbers
            continue
        body.append(line)
    reader = csv.reader(io.StringIO("".join(body)), delimiter=mapping.csv_delimiter)
    header: list[str] | None = None
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            parsed.lines.append(_reject(reader.line_num, R.MALFORMED, f"CSV error: {exc}"))
            continue
        if not cells or all(not c.strip() for c in cells):
            continue
        if header is None:
            header = [c.strip() for c in cells]
            needed = [mapping.time_field, mapping.user_field, mapping.text_field]
            missing = [n for n in needed if n not in header]
            if missing:
                parsed.lines.append(
                    _reject(reader.line_num, R.MISSING_FIELD, f"header lacks columns {missing}")
                )
                return parsed
            continue
        line_no = reader.line_num
        if any("\ufffd" in c for c in cells):
            parsed.lines.append(_reject(line_no, R.MALFORMED, "row is not UTF-8 text"))
            continue
        if len(cells) != len(header):
            detail = f"{len(cells)} cells, the header has {len(header)}"
            parsed.lines.append(_reject(line_no, R.MALFORMED, detail))
            continue
        parsed.lines.append(
            _generic_row(line_no, _FlatRow(zip(header, cells, strict=True)), mapping)
        )
    return parsed


def parse_chat(data: bytes, chat_format: ChatFormat, mapping: GenericChatMapping) -> ParsedChat:
    """The lines of one chat log in ``chat_format``."""
    if chat_format is ChatFormat.TWITCH_IRC:
        return parse_twitch(data)
    if chat_format is ChatFormat.YOUTUBE_LIVE_CHAT:
        return parse_youtube(data)
    if chat_format is ChatFormat.GENERIC_JSONL:
        return parse_generic_jsonl(data, mapping)
    return parse_generic_csv(data, mapping)


# Video clock -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Placed:
    """A line with its time on the video clock (None for refused lines)."""

    line: ChatLine
    ts_ms: int | None


def to_video_clock(
    parsed: ParsedChat, offset_ms: int = 0, stream_start_ms: int | None = None
) -> tuple[list[Placed], str]:
    """Every line with its video-clock time, and which clock origin was used.

    Relative times are already on the video clock; wall-clock times count from
    ``stream_start_ms`` (config), else the file's stated stream start, else the earliest
    wall-clock message. ``offset_ms`` is added to every time.
    """
    start, origin = stream_start_ms, "config"
    if start is None and parsed.stream_start_ms is not None:
        start, origin = parsed.stream_start_ms, "file"
    walls = [ln.time_ms for ln in parsed.lines if ln.ok and ln.clock == "wall"]
    if start is None and walls:
        start, origin = min(t for t in walls if t is not None), "first_message"
    if not walls:
        origin = "relative"
    placed = []
    for line in parsed.lines:
        if not line.ok or line.time_ms is None:
            placed.append(Placed(line, None))
        elif line.clock == "wall":
            placed.append(Placed(line, line.time_ms - (start or 0) + offset_ms))
        else:
            placed.append(Placed(line, line.time_ms + offset_ms))
    return placed, origin


def with_reason(line: ChatLine, reason: ChatRejectReason, detail: str) -> ChatLine:
    """``line`` refused after parsing (text checks, clock bounds, duplicates)."""
    return replace(line, reason=reason, detail=detail)
