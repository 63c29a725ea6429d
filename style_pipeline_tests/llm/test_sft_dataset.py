"""SFT rows: filters with reason codes, exact and near duplicates, the split by source video."""

from __future__ import annotations

import hashlib
import json

import pytest

from style_pipeline.contracts.alignment import SFT_REASONS, SftSettings, SftSplit
from style_pipeline.llm.sft_dataset import (
    Pair,
    build_rows,
    jsonl,
    messages,
    snapshot_id,
    split_manifest,
    split_of,
)

GOOD_PROMPT = "what texture pack is that?"
GOOD_RESPONSE = "Good question, the texture pack I use is called Faithful and it is free."


def media(n: int) -> str:
    return hashlib.sha256(f"video-{n}".encode()).hexdigest()


def pair(pid: str, prompt=GOOD_PROMPT, response=GOOD_RESPONSE, video=0, lang="en") -> Pair:
    return Pair(pid, media(video), prompt, response, lang)


@pytest.mark.parametrize(
    ("prompt", "response", "lang", "reason"),
    [
        (GOOD_PROMPT, GOOD_RESPONSE, "en", ""),
        ("hi", GOOD_RESPONSE, "en", "prompt_too_short"),
        ("x" * 1001, GOOD_RESPONSE, "en", "prompt_too_long"),
        (GOOD_PROMPT, "yes sure", "en", "response_too_short"),
        (GOOD_PROMPT, " ".join(f"w{i}" for i in range(401)), "en", "response_too_long"),
        ("check out www.freefollowers.com now", GOOD_RESPONSE, "en", "spam"),
        ("sooooooooo good?", GOOD_RESPONSE, "en", "spam"),
        ("hype hype hype hype", GOOD_RESPONSE, "en", "spam"),
        (GOOD_PROMPT, "the the the the the the the pack pack", "en", "repetition"),
        ("what the fuck is that pack", GOOD_RESPONSE, "en", "profanity"),
        (GOOD_PROMPT, "this shitty pack is the best one I have", "en", ""),  # not a listed form
        (GOOD_PROMPT, "oh this is bullshit, the pack is free", "en", ""),  # whole words only
        (GOOD_PROMPT, GOOD_RESPONSE, "de", "language"),  # the transcript's language
        ("quel pack de textures utilises-tu dans ce monde ?", GOOD_RESPONSE, "en", "language"),
        ("wie heißt das?", GOOD_RESPONSE, "en", ""),  # too short to be language-checked
    ],
)
def test_filters_name_their_reason(prompt, response, lang, reason):
    (row,) = build_rows([pair("p", prompt, response, lang=lang)], SftSettings())
    assert row.reason == reason
    assert row.status == ("rejected" if reason else "kept")
    assert row.reason in ("", *SFT_REASONS)


def test_language_filter_off_and_profanity_from_config():
    cfg = SftSettings(languages=(), profanity=("castle",))
    rows = build_rows(
        [
            pair("a", response="Der Texturenpack heißt Faithful und ist kostenlos.", lang="de"),
            pair("b", prompt="how big is the castle", video=1),
        ],
        cfg,
    )
    assert [(r.pair_id, r.reason) for r in rows] == [("a", ""), ("b", "profanity")]


def test_exact_and_near_duplicates_point_at_the_kept_row():
    near = GOOD_RESPONSE.replace("Faithful", "Faithfull")  # a typo
    rows = build_rows(
        [
            pair("a1", video=1),  # one video: rows are taken in pair_id order
            pair("a2", prompt="  What texture pack is that?  ", video=1),  # same, normalised
            pair("a3", response=near, video=1),
            pair(
                "a4",
                prompt="how long did the castle take",
                response="About thirty hours so far, most of it was the walls.",
                video=4,
            ),  # fmt: skip
        ],
        SftSettings(),
    )
    by_id = {r.pair_id: r for r in rows}
    assert by_id["a1"].status == "kept" and by_id["a4"].status == "kept"
    assert (by_id["a2"].reason, by_id["a2"].duplicate_of) == ("duplicate_exact", "a1")
    assert (by_id["a3"].reason, by_id["a3"].duplicate_of) == ("duplicate_near", "a1")


def distinct_text(seed: int, words: int) -> str:
    digest = hashlib.sha256(str(seed).encode()).hexdigest()
    return " ".join(WORDS[int(digest[2 * i : 2 * i + 2], 16) % len(WORDS)] for i in range(words))


WORDS = """castle tower moat bridge stone brick wood plank torch lantern river forest cave
mountain desert village farm wheat carrot potato sheep cow horse boat map compass sword bow
arrow shield armour helmet boots pickaxe shovel furnace chest barrel anvil potion""".split()


def test_split_is_a_function_of_the_video_so_no_leakage():
    cfg = SftSettings()
    pairs = [
        pair(f"{v}-{i}", prompt=distinct_text(1000 * v + i, 6) + "?",
             response=distinct_text(-1000 * v - i - 1, 16), video=v)
        for v in range(60)
        for i in range(4)
    ]  # fmt: skip
    rows = build_rows(pairs, cfg)
    assert sum(r.status == "kept" for r in rows) >= 200
    splits_of_video: dict[str, set[str]] = {}
    for row in rows:
        splits_of_video.setdefault(row.media_id, set()).add(row.split)
    assert all(len(s) == 1 for s in splits_of_video.values())
    manifest = split_manifest(rows)
    seen = [m for ids in manifest.values() for m in ids]
    assert len(seen) == len(set(seen)) >= 55
    assert {len(manifest[s]) > 0 for s in ("train", "val", "test")} == {True}
    # the same video lands in the same split on every run and for any of its pairs
    assert all(split_of(media(v), cfg.split) == split_of(media(v), cfg.split) for v in range(60))


@pytest.mark.parametrize("n", range(40))
def test_split_shares_follow_the_config_edges(n):
    all_train = SftSplit(train=1.0, val=0.0, test=0.0)
    assert split_of(media(n), all_train) == "train"
    assert split_of(media(n), SftSplit(train=0.0, val=0.0, test=1.0)) == "test"


def test_jsonl_is_chat_format_and_snapshot_hashes_template_and_rows():
    cfg = SftSettings()
    pairs = [
        pair(f"b{v}", prompt=distinct_text(v, 5) + "?", response=distinct_text(-v - 1, 12), video=v)
        for v in range(8)
    ]
    rows = build_rows(pairs, cfg)
    train = [r for r in rows if r.split == "train" and r.status == "kept"]
    lines = jsonl(rows, "train", cfg).decode().splitlines()
    assert len(lines) == len(train) > 0
    first = json.loads(lines[0])
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first == messages(train[0], cfg)
    with_system = SftSettings(system_prompt="You are the streamer.")
    assert messages(train[0], with_system)["messages"][0] == {
        "role": "system",
        "content": "You are the streamer.",
    }
    assert snapshot_id(rows, cfg) == snapshot_id(build_rows(list(reversed(pairs)), cfg), cfg)
    assert snapshot_id(rows, cfg) != snapshot_id(rows, with_system)
    assert snapshot_id(rows, cfg) != snapshot_id(rows[1:], cfg)
