"""Chat adapters on real-shaped samples of every format, malformed lines included."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from style_pipeline.contracts.chat import ChatFormat, ChatSettings, GenericChatMapping
from style_pipeline.media.sniff import chat_video_stem, sniff_chat
from style_pipeline.speech.chat_formats import (
    detect_format,
    hash_user,
    parse_chat,
    parse_irc,
    to_video_clock,
)
from style_pipeline.stages.chat_events import read_chat_file
from style_pipeline_tests.speech import chat_samples as S

VIDEO = "f" * 64


def _run(text: str, fmt: str, config: ChatSettings | None = None, end_ms=None, name="v.chat.log"):
    data = text.encode()
    row = {
        "media_id": hashlib.sha256(data).hexdigest(),
        "source_name": name,
        "format_name": fmt,
        "chat_video": "v.mp4",
    }
    records, facts = read_chat_file(row, data, VIDEO, end_ms, config or ChatSettings())
    return {(r.line_no, r.item): r for r in records}, facts


def _outcomes(records) -> dict:
    return {
        k: (r.status.value, r.reason.value if r.reason else None, r.ts_ms)
        for k, r in records.items()
    }


def _by_line(expect: dict) -> dict:
    return {(k, 0) if isinstance(k, int) else k: v for k, v in expect.items()}


@pytest.mark.parametrize(
    ("sample", "fmt", "expect", "clock"),
    [
        (S.TWITCH_WALL, "twitch_irc", S.TWITCH_WALL_EXPECT, "file"),
        (S.TWITCH_RAW, "twitch_irc", S.TWITCH_RAW_EXPECT, "first_message"),
        (S.TWITCH_RELATIVE, "twitch_irc", S.TWITCH_RELATIVE_EXPECT, "relative"),
        (S.CHATTERINO, "twitch_irc", S.CHATTERINO_EXPECT, "first_message"),
        (S.YOUTUBE, "youtube_live_chat", S.YOUTUBE_EXPECT, "relative"),
        (S.GENERIC_JSONL, "generic_jsonl", S.GENERIC_JSONL_EXPECT, "relative"),
    ],
    ids=["twitch_wall", "twitch_raw_irc", "twitch_relative", "chatterino", "youtube", "jsonl"],
)
def test_every_line_accepted_or_rejected_with_its_reason(sample, fmt, expect, clock):
    records, facts = _run(sample, fmt)
    assert _outcomes(records) == _by_line(expect)
    assert facts.clock == clock
    assert facts.accepted == sum(1 for v in expect.values() if v[0] == "accepted")


def test_generic_csv_with_a_column_mapping():
    config = ChatSettings(generic=GenericChatMapping(**S.GENERIC_CSV_MAPPING))
    records, _ = _run(S.GENERIC_CSV, "generic_csv", config, name="chat/v.csv")
    assert _outcomes(records) == _by_line(S.GENERIC_CSV_EXPECT)
    assert records[(4, 0)].text == "two\nlines"
    assert records[(2, 0)].raw_id == "L2"


def test_generic_iso_times_count_from_the_stated_stream_start():
    config = ChatSettings(generic=GenericChatMapping(**S.GENERIC_ISO_MAPPING))
    records, facts = _run(S.GENERIC_ISO, "generic_jsonl", config)
    assert _outcomes(records) == _by_line(S.GENERIC_ISO_EXPECT)
    assert facts.clock == "file"


def test_texts_users_and_ids_of_accepted_messages():
    yt, _ = _run(S.YOUTUBE, "youtube_live_chat")
    assert yt[(2, 0)].text == "what mic do you use? :yt:"
    assert yt[(2, 0)].raw_id == "ChwKGkNKZmRfT2Y1OWZVQ0ZWNHVyUVlkM2l3RW9R"
    assert yt[(2, 0)].source == "youtube_live_chat" and yt[(2, 0)].media_id == VIDEO
    assert yt[(3, 0)].text == "love the streams, what camera is that?"  # a Super Chat
    raw, _ = _run(S.TWITCH_RAW, "twitch_irc")
    assert raw[(3, 0)].raw_id == "b34ccfc7-4977-403a-8a94-33c6bac34fb8"
    assert raw[(4, 0)].text == "waves at chat"  # /me
    assert raw[(4, 0)].file_ts_ms == 1764504031000 and raw[(4, 0)].clock == "wall"
    wall, _ = _run(S.TWITCH_WALL, "twitch_irc")
    assert wall[(3, 0)].text == "what game is this?"
    assert wall[(3, 0)].user_hash == hash_user("viewer_two", "", "twitch_irc")
    chatterino, _ = _run(S.CHATTERINO, "twitch_irc")
    assert chatterino[(4, 0)].user_hash == hash_user("login_name", "", "twitch_irc")


def test_rejected_rows_never_carry_the_text():
    for sample, fmt in [(S.TWITCH_WALL, "twitch_irc"), (S.GENERIC_JSONL, "generic_jsonl")]:
        records, _ = _run(sample, fmt)
        for r in records.values():
            assert (r.text is None) == (r.status.value == "rejected")
            assert r.detail is None or "viewer" not in r.detail


def test_user_names_are_hashed_with_the_salt():
    plain, _ = _run(S.TWITCH_RELATIVE, "twitch_irc")
    salted, _ = _run(S.TWITCH_RELATIVE, "twitch_irc", ChatSettings(user_salt="pepper"))
    a, b = plain[(1, 0)].user_hash, salted[(1, 0)].user_hash
    assert a and b and a != b and len(a) == 16
    assert "viewer" not in a
    assert hash_user("Viewer_One", "s", "twitch_irc") == hash_user("viewer_one", "s", "twitch_irc")
    assert hash_user("x", "s", "twitch_irc") != hash_user("x", "s", "youtube_live_chat")


def test_clock_offsets_and_stream_starts_from_config():
    by_source = ChatSettings(clock_offsets_ms={"twitch_irc": -2000})
    records, facts = _run(S.TWITCH_RELATIVE, "twitch_irc", by_source)
    assert records[(1, 0)].ts_ms == 1000 and facts.offset_ms == -2000
    by_stem = ChatSettings(clock_offsets_ms={"twitch_irc": -2000, "v": 500})
    records, _ = _run(S.TWITCH_RELATIVE, "twitch_irc", by_stem)
    assert records[(1, 0)].ts_ms == 3500
    start = dt.datetime(2026, 11, 30, 12, 0, 30, tzinfo=dt.UTC)
    records, facts = _run(S.TWITCH_WALL, "twitch_irc", ChatSettings(stream_starts={"v": start}))
    assert facts.clock == "config"
    assert records[(3, 0)].ts_ms == 1000
    assert records[(2, 0)].reason.value == "outside_video"  # 12:00:05 is before 12:00:30


def test_messages_after_the_video_end_are_outside_it():
    records, _ = _run(S.TWITCH_RELATIVE, "twitch_irc", end_ms=80000)
    assert records[(3, 0)].reason.value == "outside_video"
    assert records[(2, 0)].status.value == "accepted"


def test_too_long_text_is_rejected():
    records, _ = _run(S.TWITCH_RELATIVE, "twitch_irc", ChatSettings(max_text_chars=10))
    assert records[(1, 0)].status.value == "accepted"  # "first!"
    assert records[(2, 0)].reason.value == "text_too_long"


def test_non_utf8_lines_are_malformed_and_the_rest_goes_on():
    data = b"[0:00:01] a: ok\n" + b"[0:00:02] b: \xff\xfe bad\n" + b"[0:00:03] c: ok\n"
    parsed = parse_chat(data, ChatFormat.TWITCH_IRC, GenericChatMapping())
    assert [(ln.line_no, ln.reason) for ln in parsed.lines] == [
        (1, None), (2, "malformed"), (3, None),
    ]  # fmt: skip
    placed, origin = to_video_clock(parsed, offset_ms=0)
    assert origin == "relative" and [p.ts_ms for p in placed] == [1000, None, 3000]


@pytest.mark.parametrize(
    ("sample", "ext", "fmt"),
    [
        (S.TWITCH_WALL, ".log", "twitch_irc"),
        (S.TWITCH_RAW, ".irc", "twitch_irc"),
        (S.TWITCH_RELATIVE, ".txt", "twitch_irc"),
        (S.CHATTERINO, ".log", "twitch_irc"),
        (S.YOUTUBE, ".json", "youtube_live_chat"),
        (S.GENERIC_JSONL, ".jsonl", "generic_jsonl"),
        (S.GENERIC_ISO, ".jsonl", "generic_jsonl"),
        (S.GENERIC_CSV, ".csv", "generic_csv"),
        ("just some notes\nnothing chat-like\n", ".txt", None),
        ("", ".log", None),
    ],
)
def test_format_detection(sample, ext, fmt):
    assert sniff_chat(sample.encode()[:8192], ext) == fmt
    assert detect_format(sample.encode(), ext) == (ChatFormat(fmt) if fmt else None)


def test_binary_is_no_chat_format():
    assert sniff_chat(b"\x00\x01\x02\xff" * 100, ".log") is None


@pytest.mark.parametrize(
    ("rel", "stem"),
    [
        ("2026-11-30/show.chat.log", "show"),
        ("show.chat.jsonl", "show"),
        ("streams/My Stream.live_chat.json", "My Stream"),
        ("chat/show.jsonl", "show"),
        ("2026-11-30/chat/show.chat.csv", "show"),
        ("show.chat.mp4", None),
        ("notes.txt", None),
        ("show.log", None),
        (".chat.log", None),
    ],
)
def test_chat_names(rel, stem):
    assert chat_video_stem(rel) == stem


def test_parse_irc_tags_are_unescaped():
    msg = parse_irc(r"@system-msg=a\sb\:c\\d;id=1 :tmi.twitch.tv USERNOTICE #chan")
    assert msg.tags == {"system-msg": "a b;c\\d", "id": "1"}
    assert msg.command == "USERNOTICE" and msg.trailing is None and msg.nick == "tmi.twitch.tv"


def test_configured_format_overrides_the_detected_one():
    csv_as_text = "t;who;msg\n1;alice;hi there\n"
    mapping = GenericChatMapping(time_field="t", time_unit="s", user_field="who",
                                 text_field="msg", id_field=None, csv_delimiter=";")  # fmt: skip
    config = ChatSettings(format="generic_csv", generic=mapping)
    records, facts = _run(csv_as_text, "twitch_irc", config, name="chat/v.txt")
    assert facts.format == "generic_csv"
    assert [(r.status.value, r.ts_ms, r.text) for r in records.values()] == [
        ("accepted", 1000, "hi there"),
    ]  # fmt: skip


def test_an_unknown_format_is_one_rejected_row():
    records, facts = _run("nothing to see\n", "", name="chat/v.txt")
    (only,) = records.values()
    assert (only.status.value, only.reason.value, only.line_no) == ("rejected", "unknown_format", 0)
    assert facts.reason == "unknown_format"
