"""Real-shaped chat logs of every format the adapters read, with malformed lines.

Shapes follow what the tools write: Twitch IRC (tmi.twitch.tv with the tags capability,
as a bot or ``irc`` logger records it), bracketed Twitch logs (ZNC/irssi-like wall clock,
TwitchDownloader's relative ``[H:MM:SS]``, Chatterino's ``# Start logging at`` header),
yt-dlp's ``.live_chat.json`` (one ``replayChatItemAction`` per line), and generic
JSONL/CSV. Each sample's expected outcome is stated next to it.
"""

from __future__ import annotations

import json

# -- Twitch, bracketed with wall-clock times and a stated stream start ----------------------
TWITCH_WALL = """\
# stream_start: 2026-11-30T12:00:00Z
[2026-11-30 12:00:05] <viewer_one> hi chat
[2026-11-30 12:00:31] <Viewer_Two> what game is this?
[2026-11-30 12:00:40 UTC] viewer_three: @streamer how long have you been live
[2026-11-30 12:01:02] * viewer_one has joined
[2026-13-40 12:00:00] <bad_date> this line has an impossible date
this line has no time at all
[2026-11-30 11:59:00] <early_bird> before the stream started
[2026-11-30 12:00:50] <viewer_four>

"""
# line -> (status, reason, ts_ms)
TWITCH_WALL_EXPECT = {
    2: ("accepted", None, 5000),
    3: ("accepted", None, 31000),
    4: ("accepted", None, 40000),
    5: ("rejected", "not_a_message", None),
    6: ("rejected", "bad_timestamp", None),
    7: ("rejected", "malformed", None),
    8: ("rejected", "outside_video", -60000),
    9: ("rejected", "empty_text", 50000),
}

# -- Twitch raw IRC with IRCv3 tags (no stream start: the first message is 0) -------------
_TAGS = (
    "@badge-info=subscriber/8;badges=subscriber/6,premium/1;client-nonce=4c8b2ea5;"
    "color=#1E90FF;display-name=ViewerOne;emotes=;first-msg=0;flags=;"
    "id=b34ccfc7-4977-403a-8a94-33c6bac34fb8;mod=0;returning-chatter=0;room-id=1337;"
    "subscriber=1;tmi-sent-ts=1764504005000;turbo=0;user-id=12345678;user-type="
)
TWITCH_RAW = "\r\n".join(
    [
        ":tmi.twitch.tv 001 justinfan123 :Welcome, GLHF!",
        "PING :tmi.twitch.tv",
        f"{_TAGS} :viewerone!viewerone@viewerone.tmi.twitch.tv PRIVMSG #streamer :hello there",
        "@badge-info=;badges=;color=;display-name=viewertwo;emotes=;id=6b1d4c56-0d1e-4a4b-9e8e-"
        "2f1d2c3b4a59;mod=0;room-id=1337;subscriber=0;tmi-sent-ts=1764504031000;turbo=0;"
        "user-id=87654321;user-type= :viewertwo!viewertwo@viewertwo.tmi.twitch.tv PRIVMSG "
        "#streamer :\x01ACTION waves at chat\x01",
        f"{_TAGS} :viewerone!viewerone@viewerone.tmi.twitch.tv PRIVMSG #streamer :hello there",
        "@badge-info=;badges=;color=;display-name=Gifter;emotes=;id=3f6c1e1a;login=gifter;"
        "msg-id=subgift;room-id=1337;system-msg=Gifter\\sgifted\\sa\\ssub!;"
        "tmi-sent-ts=1764504040000 :tmi.twitch.tv USERNOTICE #streamer",
        "@ban-duration=600;room-id=1337;target-user-id=12345678;tmi-sent-ts=1764504100000 "
        ":tmi.twitch.tv CLEARCHAT #streamer :viewerone",
        "@id=aa11;tmi-sent-ts=yesterday :viewerthree!viewerthree@viewerthree.tmi.twitch.tv "
        "PRIVMSG #streamer :bad time",
        ":viewerfive!viewerfive@viewerfive.tmi.twitch.tv PRIVMSG #streamer :no tags no time",
        "@id=bb22;tmi-sent-ts=1764504050000 :viewersix!viewersix@viewersix.tmi.twitch.tv "
        "PRIVMSG #streamer",
        "@id=cc33;tmi-sent-ts=1764504060000",
        "",
    ]
)
TWITCH_RAW_EXPECT = {
    1: ("rejected", "not_a_message", None),
    2: ("rejected", "not_a_message", None),
    3: ("accepted", None, 0),
    4: ("accepted", None, 26000),
    5: ("rejected", "duplicate_event", 0),
    6: ("rejected", "not_a_message", None),
    7: ("rejected", "not_a_message", None),
    8: ("rejected", "bad_timestamp", None),
    9: ("rejected", "no_timestamp", None),
    10: ("rejected", "malformed", None),
    11: ("rejected", "malformed", None),
}

# -- TwitchDownloader text export, relative times --------------------------------------------
TWITCH_RELATIVE = """\
[0:00:03] viewer_one: first!
[0:01:10] viewer_two: what settings do you use
[1:00:00] viewer_three: an hour in
[0:61:00] viewer_four: minutes out of range
[0:00:09] Now hosting another_channel.
"""
TWITCH_RELATIVE_EXPECT = {
    1: ("accepted", None, 3000),
    2: ("accepted", None, 70000),
    3: ("accepted", None, 3600000),
    4: ("rejected", "bad_timestamp", None),
    5: ("rejected", "not_a_message", None),
}

# -- Chatterino log across midnight (time of day under its header) ---------------------------
CHATTERINO = """\
# Start logging at 2026-11-30 23:59:50 UTC
[23:59:55]  viewer_one: before midnight
[00:00:05]  viewer_two: after midnight
[00:00:07]  Anzeigename (login_name): display name and login
"""
CHATTERINO_EXPECT = {
    2: ("accepted", None, 0),
    3: ("accepted", None, 10000),
    4: ("accepted", None, 12000),
}


# -- YouTube: yt-dlp's .live_chat.json (replay) ----------------------------------------------
def _text_item(
    text_runs: list, author: str, channel: str, msg_id: str, usec: int, shown: str
) -> dict:
    return {
        "liveChatTextMessageRenderer": {
            "message": {"runs": text_runs},
            "authorName": {"simpleText": author},
            "authorPhoto": {
                "thumbnails": [
                    {
                        "url": "https://yt4.ggpht.com/ytc/AIdro_k=s32-c-k-c0x00ffffff-no-rj",
                        "width": 32,
                        "height": 32,
                    },
                ]
            },
            "contextMenuEndpoint": {
                "commandMetadata": {"webCommandMetadata": {"ignoreNavigation": True}},
                "liveChatItemContextMenuEndpoint": {"params": "Q2g0S0dnb1lRMmhCUlVGc"},
            },
            "id": msg_id,
            "timestampUsec": str(usec),
            "authorExternalChannelId": channel,
            "contextMenuAccessibility": {"accessibilityData": {"label": "Chat actions"}},
            "timestampText": {"simpleText": shown},
        }
    }


def _replay(items: list[dict], offset_ms: int | str) -> str:
    actions = [
        {"addChatItemAction": {"item": item, "clientId": "CJfd_Of59fUCFV4urQYd3iwEoQ"}}
        for item in items
    ]
    return json.dumps(
        {
            "replayChatItemAction": {"actions": actions, "videoOffsetTimeMsec": str(offset_ms)},
            "isLive": True,
        }
    )


_EMOJI = {
    "emoji": {
        "emojiId": "UCkszU2WH9gy1mb0dV-11UJg/CIW60IPp_dYCFcuqTgodEu4IlQ",
        "shortcuts": [":yt:"],
        "searchTerms": ["yt"],
        "image": {"thumbnails": [{"url": "https://yt3.ggpht.com/m=w24-h24-c-k-nd"}]},
        "isCustomEmoji": True,
    }
}
_ENGAGEMENT = {
    "liveChatViewerEngagementMessageRenderer": {
        "id": "ChwKGkNPbV9fX19fX19fX19fX19fX19fXw",
        "timestampUsec": "1764504000000000",
        "icon": {"iconType": "YOUTUBE_ROUND"},
        "message": {"runs": [{"text": "Live chat replay is on."}]},
    }
}
_PAID = {
    "liveChatPaidMessageRenderer": {
        "id": "ChwKGkNMMnF0Y2Y1OWZVQ0ZRbE5yUVlkX3VZSGhB",
        "timestampUsec": "1764504090000000",
        "authorName": {"simpleText": "Big Fan"},
        "authorExternalChannelId": "UCcccccccccccccccccccccc",
        "purchaseAmountText": {"simpleText": "$5.00"},
        "message": {"runs": [{"text": "love the streams, what camera is that?"}]},
        "timestampText": {"simpleText": "1:30"},
    }
}
YOUTUBE = "\n".join(
    [
        _replay([_ENGAGEMENT], 0),
        _replay(
            [
                _text_item(
                    [{"text": "what mic do you use? "}, _EMOJI],
                    "Alice", "UCaaaaaaaaaaaaaaaaaaaaaa",
                    "ChwKGkNKZmRfT2Y1OWZVQ0ZWNHVyUVlkM2l3RW9R", 1764504061000000, "1:01",
                ),
                _text_item(
                    [{"text": "first time here"}],
                    "Bob", "UCbbbbbbbbbbbbbbbbbbbbbb",
                    "ChwKGkNJS1pfT2Y1OWZVQ0ZSZ0RyUVlkZEZjQ0FR", 1764504061500000, "1:01",
                ),
            ],
            61500,
        ),
        _replay([_PAID], 90000),
        json.dumps(
            {
                "replayChatItemAction": {
                    "actions": [
                        {"markChatItemAsDeletedAction": {
                            "deletedStateMessage": {"runs": [{"text": "[message retracted]"}]},
                            "targetItemId": "ChwKGkNJS1pfT2Y1OWZVQ0ZSZ0RyUVlkZEZjQ0FR"}}
                    ],
                    "videoOffsetTimeMsec": "95000",
                }
            }
        ),
        _replay([_text_item([{"text": "no author"}], "", "", "x1", 1, "1:40")], 100000),
        '{"replayChatItemAction": {"actions": [{"addChatItemAction": {"item": {"liveChat',
        _replay([_text_item([{"text": "bad offset"}], "C", "UCc", "x2", 1, "?")], "soon"),
        "",
    ]
)  # fmt: skip
# (line, item) -> (status, reason, ts_ms)
YOUTUBE_EXPECT = {
    (1, 0): ("rejected", "not_a_message", None),
    (2, 0): ("accepted", None, 61500),
    (2, 1): ("accepted", None, 61500),
    (3, 0): ("accepted", None, 90000),
    (4, 0): ("rejected", "not_a_message", None),
    (5, 0): ("rejected", "missing_field", None),
    (6, 0): ("rejected", "malformed", None),
    (7, 0): ("rejected", "bad_timestamp", None),
}

# -- Generic JSONL with the default mapping (ts_ms, user, text, id) --------------------------
GENERIC_JSONL = """\
{"ts_ms": 1500, "user": "alice", "text": "what is your favourite colour?", "id": "m1"}
{"ts_ms": "oops", "user": "bob", "text": "bad time"}
{"user": "bob", "text": "no time"}
{"ts_ms": 2000, "text": "no user"}
{"ts_ms": 2500, "user": "carol", "text": {"nested": true}}
[1, 2, 3]
{"ts_ms": 3000, "user": "dave", "text": "   "}
{"ts_ms": 3500, "user": "erin", "text": "cut off
{"ts_ms": 4000, "user": "alice", "text": "again", "id": "m1"}
{"ts_ms": 4500, "user": "frank", "text": "the end"}
"""
GENERIC_JSONL_EXPECT = {
    1: ("accepted", None, 1500),
    2: ("rejected", "bad_timestamp", None),
    3: ("rejected", "no_timestamp", None),
    4: ("rejected", "missing_field", None),
    5: ("rejected", "malformed", None),
    6: ("rejected", "malformed", None),
    7: ("rejected", "empty_text", 3000),
    8: ("rejected", "malformed", None),
    9: ("rejected", "duplicate_event", 4000),
    10: ("accepted", None, 4500),
}

# -- Generic CSV with a custom mapping (seconds, other column names) -------------------------
GENERIC_CSV = """\
time,author,message
1.5,alice,"hello, world"
2.0,bob,"two
lines"
x,carol,bad time
3.0,dave
4.25,erin,ok
"""
GENERIC_CSV_MAPPING = {
    "time_field": "time", "time_unit": "s", "user_field": "author",
    "text_field": "message", "id_field": None,
}  # fmt: skip
GENERIC_CSV_EXPECT = {
    2: ("accepted", None, 1500),
    4: ("accepted", None, 2000),
    5: ("rejected", "bad_timestamp", None),
    6: ("rejected", "malformed", None),
    7: ("accepted", None, 4250),
}

# -- Generic JSONL with ISO wall-clock times and a stream_start object -----------------------
GENERIC_ISO = """\
{"stream_start": "2026-11-30T12:00:00Z"}
{"at": "2026-11-30T12:00:10Z", "who": {"name": "alice"}, "body": "ten seconds in"}
{"at": "2026-11-30T12:00:12.250+00:00", "who": {"name": "bob"}, "body": "a bit later"}
{"at": "not a date", "who": {"name": "bob"}, "body": "bad"}
"""
GENERIC_ISO_MAPPING = {
    "time_field": "at", "time_unit": "iso", "user_field": "who.name",
    "text_field": "body", "id_field": None,
}  # fmt: skip
GENERIC_ISO_EXPECT = {
    2: ("accepted", None, 10000),
    3: ("accepted", None, 12250),
    4: ("rejected", "bad_timestamp", None),
}
