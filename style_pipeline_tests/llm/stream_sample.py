"""A hand-written stream: transcript segments, chat messages and which message each answer
answers (the known pairs the alignment tests score against)."""

from __future__ import annotations

from style_pipeline.speech.alignment import ChatMessage, Segment

VIDEO = "a" * 64
OTHER = "b" * 64

# (segment_id, start_s, end_s, text)
SPEECH = [
    ("s01", 2, 8, "Alright welcome back everyone, today we are finishing the castle build."),
    ("s02", 20, 27, "Good question, the texture pack I use is called Faithful, it is free."),
    ("s03", 28, 34, "I am placing the stone bricks along the outer wall now."),
    ("s04", 52, 60, "Someone asked how long the castle took, about thirty hours so far."),
    ("s05", 61, 66, "Okay let me grab more wood from the storage chest."),
    ("s06", 90, 98, "The seed is in the description, it is a plains village seed."),
    ("s07", 99, 104, "Um yeah."),
    ("s08", 130, 139, "Chat says the tower looks wonky, yeah the tower is leaning on purpose."),
    # a hard negative: shares "stream" with the question c14 it does not answer
    ("s09", 160, 168, "I think I will add a moat around the whole castle next stream."),
    ("s10", 190, 199, "My favourite block is probably deepslate, the dark grey looks great."),
    ("s11", 230, 238, "We will stream again on Friday at eight in the evening."),
]
# (event_id, ts_s, user, text)
CHAT = [
    ("c01", 1, "u1", "hi!!"),
    ("c02", 12, "u2", "what texture pack is that?"),
    ("c03", 15, "u3", "lol"),
    ("c04", 18, "u4", "PogChamp"),
    ("c05", 40, "u5", "how long did the castle take you"),
    ("c06", 47, "u6", "first time here"),
    ("c07", 50, "u3", "KEKW"),
    ("c08", 75, "u7", "whats the seed"),
    ("c09", 77, "u7", "for this world"),
    ("c10", 86, "u8", "nice"),
    ("c11", 88, "u9", "gg"),
    ("c12", 120, "u2", "the tower looks wonky"),
    ("c13", 128, "u10", "LUL"),
    ("c14", 150, "u11", "are you going to stream minecraft tomorrow"),
    ("c15", 158, "u4", "hype"),
    ("c16", 175, "u12", "what is your favourite block?"),
    ("c17", 186, "u3", "deepslate gang"),
    ("c18", 189, "u5", "lmao"),
    ("c19", 215, "u13", "when is the next stream?"),
    ("c20", 228, "u6", "bye"),
]
# segment -> the message it answers (the first of the joined ones)
TRUTH = {
    "s02": "c02",
    "s04": "c05",
    "s06": "c08",
    "s08": "c12",
    "s10": "c16",
    "s11": "c19",
}


def sample() -> tuple[list[Segment], list[ChatMessage]]:
    segments = [
        Segment(VIDEO, sid, start * 1000, end * 1000, text, "en", -0.3, 0.05)
        for sid, start, end, text in SPEECH
    ]
    chat = [ChatMessage(eid, VIDEO, ts * 1000, user, text) for eid, ts, user, text in CHAT]
    return segments, chat
