"""Characters in captions: trigger words after the style trigger, kept by the ontology check."""

from __future__ import annotations

import pytest

from style_pipeline.captioning.characters import allowed_phrases, named_characters, trigger_words
from style_pipeline.captioning.pipeline import finish_caption
from style_pipeline.captioning.postprocess import approx_token_count, postprocess_caption
from style_pipeline.captioning.validation import Vocabulary
from style_pipeline.contracts.captioning import CaptionConfig
from style_pipeline.contracts.characters import CharacterRecord, CharacterSpec

TRIGGER = "sps_style"
VOCAB = Vocabulary.build(["woman", "street", "tree", "golden hour"], {"street": ["road"]})


@pytest.mark.parametrize(
    ("raw", "characters", "expected"),
    [
        ("a woman on a street", ["ohwx_ann"], f"{TRIGGER}, ohwx_ann, a woman on a street"),
        (
            "ohwx_ann and OHWX_BOB on a street",
            ["ohwx_ann", "ohwx_bob"],
            f"{TRIGGER}, ohwx_ann, ohwx_bob, and on a street",
        ),
        ("a street", ["ohwx_ann", "OHWX_ANN", TRIGGER, " "], f"{TRIGGER}, ohwx_ann, a street"),
        ("", ["ohwx_ann"], f"{TRIGGER}, ohwx_ann"),
        ("a street", [], f"{TRIGGER}, a street"),
    ],
)
def test_character_triggers_follow_the_style_trigger_once(raw, characters, expected):
    assert postprocess_caption(raw, TRIGGER, characters=characters) == expected


def test_style_tag_equal_to_a_character_trigger_is_not_repeated():
    result = postprocess_caption("a street", TRIGGER, ("ohwx_ann", "film"), characters=["ohwx_ann"])
    assert result == f"{TRIGGER}, ohwx_ann, a street, film"


@pytest.mark.parametrize("limit", [16, 20, 77])
def test_truncation_keeps_every_trigger(limit):
    raw = " ".join(f"word{i}" for i in range(200))
    result = postprocess_caption(
        raw, TRIGGER, ("film grain",), max_tokens=limit, characters=["ohwx_ann", "ohwx_bob"]
    )
    assert approx_token_count(result) <= limit - 2
    assert result.startswith(f"{TRIGGER}, ohwx_ann, ohwx_bob")
    assert result.count("ohwx_ann") == 1


def test_triggers_that_cannot_fit_raise():
    with pytest.raises(ValueError, match="exceeds"):
        postprocess_caption("a street", TRIGGER, max_tokens=8, characters=["x" * 80])


def test_ontology_check_keeps_trigger_words_and_aliases():
    config = CaptionConfig(trigger_word=TRIGGER)
    raw = "a woman named treee on a road"  # "treee" is one letter off the term "tree"
    # without the character, "womann" and "treee" would be repaired to ontology terms
    caption, valid, violations, repairs = finish_caption(raw, config, VOCAB)
    assert "tree" in caption.split() and repairs == ["treee->tree"]
    caption, valid, violations, repairs = finish_caption(
        raw, config, VOCAB, characters=["womann"], allowed=["womann", "treee"]
    )
    assert caption.startswith(f"{TRIGGER}, womann, a woman")
    assert "treee" in caption and repairs == []
    assert violations == ["named"] and not valid  # the rest is still checked
    caption, valid, _, repairs = finish_caption(
        "a woman on a road", config, VOCAB, characters=["womann"]
    )
    assert caption == f"{TRIGGER}, womann, a woman on a road" and valid and repairs == []


def _row(frame_id, face_index, label, matched):
    return CharacterRecord(
        frame_id=frame_id,
        face_index=face_index,
        label=label,
        matched=matched,
        confidence=0.9 if matched else 0.0,
        x0=0,
        y0=0,
        x1=10,
        y1=10,
    ).model_dump()


def test_named_characters_largest_face_first_matched_only():
    rows = [
        _row("f1", 2, "bob", True),
        _row("f1", 0, "ann", True),
        _row("f1", 1, "unknown_0", False),
        _row("f1", 3, "ann", True),
        _row("f1", 4, None, False),
        _row("f2", 0, "unknown_1", False),
        _row("f3", 0, None, False),
    ]
    assert named_characters(rows) == {"f1": ["ann", "bob"]}
    assert named_characters([]) == {}


def test_trigger_words_and_allowed_phrases_from_specs():
    specs = {
        "ann": CharacterSpec(name="ann", trigger_word="ohwx_ann", aliases=["annie"]),
        "bob": CharacterSpec(name="bob"),
    }
    assert trigger_words(["bob", "ann", "gone"], specs) == ["bob", "ohwx_ann", "gone"]
    assert allowed_phrases(specs) == ["annie", "bob", "ohwx_ann"]
