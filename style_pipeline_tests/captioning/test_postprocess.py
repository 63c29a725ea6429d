"""Post-processing: cleanup, trigger word first exactly once, style tags, truncation."""

from __future__ import annotations

import pytest

from style_pipeline.captioning.postprocess import (
    Fitted,
    approx_token_count,
    budget_fits,
    clean_caption,
    collapse_repeats,
    fit_caption,
    fit_to_limit,
    postprocess_caption,
    to_tags,
    tokenizer_counter,
)

TRIGGER = "sps_style"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("arafed woman sitting on a bench", "woman sitting on a bench"),
        ("araffe man in a red coat.", "man in a red coat"),
        ("there is a cat on a table", "a cat on a table"),
        ("There are two dogs running", "two dogs running"),
        ("this is a street at night!!", "a street at night"),
        ("a a cat cat sleeping", "a cat sleeping"),
        ("a cat on a table on a table", "a cat on a table"),
        ("A Red Car , parked ,, outside", "a red car, parked, outside"),
        ("  lots   of   space  ", "lots of space"),
    ],
)
def test_clean_caption(raw, expected):
    assert clean_caption(raw) == expected


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("a b b c", "a b c"),
        ("a b a b a b", "a b"),
        ("x y z x y z w", "x y z w"),
        ("dog, dog, cat", "dog, cat"),
        ("one two three", "one two three"),
    ],
)
def test_collapse_repeats(words, expected):
    assert " ".join(collapse_repeats(words.split())) == expected


@pytest.mark.parametrize(
    ("raw", "tags", "expected"),
    [
        ("a woman in a park", (), f"{TRIGGER}, a woman in a park"),
        (f"a woman, {TRIGGER}, in a park", (), f"{TRIGGER}, a woman, in a park"),
        (f"{TRIGGER.upper()} a red car {TRIGGER}", (), f"{TRIGGER}, a red car"),
        (
            "a red car",
            ("film grain", "warm tones"),
            f"{TRIGGER}, a red car, film grain, warm tones",
        ),
        ("a car with film grain", ("film grain",), f"{TRIGGER}, a car with film grain"),
        ("", ("film grain",), f"{TRIGGER}, film grain"),
        ("", (), TRIGGER),
    ],
)
def test_trigger_first_once_and_tags(raw, tags, expected):
    result = postprocess_caption(raw, TRIGGER, tags)
    assert result == expected
    assert result.startswith(TRIGGER)
    assert result.lower().count(TRIGGER) == 1


@pytest.mark.parametrize("limit", [12, 20, 40, 77])
def test_truncation_keeps_trigger_and_tags(limit):
    raw = " ".join(f"word{i}" for i in range(200))
    result = postprocess_caption(raw, TRIGGER, ("film grain",), max_tokens=limit)
    assert approx_token_count(result) <= limit - 2
    assert result.startswith(f"{TRIGGER}, word0")
    assert result.endswith(", film grain")


def test_truncation_does_not_end_on_a_dangling_word():
    raw = "a cat sitting on the mat with a ball of red wool near the window"
    result = postprocess_caption(raw, TRIGGER, max_tokens=12, count_tokens=lambda t: len(t.split()))
    assert len(result.split()) <= 10
    assert result.split()[-1] not in {"a", "the", "of", "on", "with", "near"}


def test_trigger_alone_over_limit_raises():
    with pytest.raises(ValueError, match="exceeds"):
        fit_to_limit("x" * 200, "body", (), max_tokens=10)


def test_empty_trigger_raises():
    with pytest.raises(ValueError, match="trigger"):
        postprocess_caption("a cat", "  ")


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("", 0),
        ("cat", 1),
        ("a cat, sitting", 4),
        ("photographically", 3),
        ("sps_style,", 4),
        ("1080p", 5),
    ],
)
def test_approx_token_count(text, count):
    assert approx_token_count(text) == count


def test_tokenizer_counter_uses_the_tokenizer_without_special_tokens():
    from transformers import BertTokenizer

    from style_pipeline.models.blip import tiny_vocabulary

    vocab = tiny_vocabulary([TRIGGER])
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)})
    count = tokenizer_counter(tokenizer)
    # Only single characters are known: "ab" -> "a", "##b".
    assert count("ab cd") == 4
    raw = " ".join(a + b for a in "abcdef" for b in "ghijk")  # 30 distinct words, 60 tokens
    long_caption = postprocess_caption(raw, TRIGGER, max_tokens=30, count_tokens=count)
    assert 20 <= count(long_caption) <= 28
    assert long_caption.startswith(TRIGGER)


@pytest.mark.parametrize(
    ("raw", "tags"),
    [
        ("a woman in a red coat walking on a street", "woman, red coat, walking, street"),
        ("a photo of two dogs and a cat by the window", "two dogs, cat, window"),
        ("woman, red coat, street", "woman, red coat, street"),  # a tag list stays one
        ("a man wearing a hat, a man wearing a hat", "man, hat"),
    ],
)  # fmt: skip
def test_to_tags(raw, tags):
    assert ", ".join(to_tags(clean_caption(raw))) == tags


def test_tags_and_sentence_styles():
    raw = "a woman in a red coat on a street at night"
    sentence = postprocess_caption(raw, TRIGGER, ("film grain",), characters=["ohwx_ann"])
    tags = postprocess_caption(raw, TRIGGER, ("film grain",), characters=["ohwx_ann"], style="tags")
    assert (
        sentence == f"{TRIGGER}, ohwx_ann, a woman in a red coat on a street at night, film grain"
    )
    assert tags == f"{TRIGGER}, ohwx_ann, woman, red coat, street, night, film grain"


def test_sentence_truncation_drops_whole_comma_parts_first():
    body = "a woman in a red coat, neon signs, wet street"
    fitted = fit_caption(TRIGGER, body, ("film grain",), budget_fits(14, lambda t: len(t.split())))
    assert fitted == Fitted(f"{TRIGGER}, a woman in a red coat, neon signs, film grain", True)
    untouched = fit_caption(TRIGGER, body, (), budget_fits(77))
    assert untouched == Fitted(f"{TRIGGER}, {body}", False)
