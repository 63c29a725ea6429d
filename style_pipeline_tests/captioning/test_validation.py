"""Validation against the controlled vocabulary: allowed, repaired, flagged."""

from __future__ import annotations

import numpy as np
import pytest

from style_pipeline.captioning.validation import (
    STOPWORDS,
    Vocabulary,
    load_stopwords,
    nearest_term,
    validate_caption,
)

VOCAB = Vocabulary.build(
    ["woman", "street", "golden hour", "film grain", "tree", "portrait", "close-up"],
    {"woman": ["lady"], "street": ["road"], "portrait": ["headshot"]},
)
TRIGGER = "sps_style"


@pytest.mark.parametrize(
    "caption",
    [
        f"{TRIGGER}, a woman on a street",
        f"{TRIGGER}, a lady on the road at golden hour, film grain",
        "A Woman near a Tree",
        f"{TRIGGER}, close-up portrait of a woman",
        "headshot, film grain",
        "",
    ],
)
def test_valid_captions_pass_unchanged(caption):
    caption_out, valid, violations, repairs = validate_caption(
        caption, VOCAB, allowed_extra=[TRIGGER]
    )
    assert (caption_out, valid, violations, repairs) == (caption, True, [], [])


@pytest.mark.parametrize(
    ("caption", "expected", "repaired"),
    [
        ("a womn on a street", "a woman on a street", [("womn", "woman")]),
        ("a woman under trees", "a woman under tree", [("trees", "tree")]),
        ("goldenhour light", None, [("goldenhour", "golden hour")]),
        ("a ladys portrait", "a woman portrait", [("ladys", "woman")]),
        (
            "film grian, streets",
            "film grain, street",
            [("film grian", "film grain"), ("streets", "street")],
        ),
    ],
)
def test_near_misses_are_repaired_to_canonical_terms(caption, expected, repaired):
    result = validate_caption(caption, VOCAB)
    assert [(r.original, r.replacement) for r in result.repairs] == repaired
    if expected is not None:
        assert result.caption == expected
        assert result.valid
    assert all(r.method == "spelling" and r.score >= 0.8 for r in result.repairs)


@pytest.mark.parametrize(
    ("caption", "violations"),
    [
        ("a woman walking on a street", ["walking"]),
        ("a dog and a cat", ["dog", "cat"]),
        ("golden sunset", ["golden", "sunset"]),
        ("street 1080p", ["1080p"]),
    ],
)
def test_unknown_words_are_flagged_and_kept(caption, violations):
    result = validate_caption(caption, VOCAB)
    assert result.violations == violations
    assert not result.valid
    assert result.caption == caption


def test_trigger_and_style_tags_are_allowed_only_when_passed():
    caption = f"{TRIGGER}, a woman, kodachrome look"
    assert not validate_caption(caption, VOCAB).valid
    assert validate_caption(caption, VOCAB, allowed_extra=[TRIGGER, "kodachrome look"]).valid


def test_multiword_terms_do_not_match_across_punctuation():
    result = validate_caption("golden, hour", VOCAB)
    assert result.violations == ["golden", "hour"]


@pytest.mark.parametrize("cutoff", [0.5, 0.95])
def test_cutoff_controls_repairs(cutoff):
    result = validate_caption("a wman", VOCAB, cutoff=cutoff)
    assert bool(result.repairs) == (cutoff <= 0.9)


def test_embedding_similarity_repairs_what_spelling_cannot():
    # A toy embedding: "female" points the same way as "woman".
    table = {"female": [1.0, 0.1, 0.0], "woman": [1.0, 0.0, 0.0], "zzz": [0.0, 1.0, 0.0]}

    def embed(texts):
        return np.array([table.get(t, [0.0, 0.0, 1.0]) for t in texts])

    plain = validate_caption("a female", VOCAB)
    assert plain.violations == ["female"]
    result = validate_caption("a female", VOCAB, embed=embed)
    assert result.caption == "a woman"
    assert result.repairs[0].method == "embedding"
    assert nearest_term("zzz", VOCAB, embed=embed) is None


def test_stopwords_file_extends_the_constant(tmp_path):
    path = tmp_path / "stopwords.txt"
    path.write_text("# extra\nwalking\n\n")
    words = load_stopwords(path)
    assert "walking" in words and STOPWORDS <= words
    assert validate_caption("a woman walking", VOCAB, words).valid


@pytest.fixture(scope="module")
def ontology_vocab():
    from style_pipeline.captioning.vocabulary import load_default_ontology, ontology_vocabulary

    return ontology_vocabulary(load_default_ontology())


def test_seed_captions_are_in_the_ontology_vocabulary(ontology_vocab):
    from style_pipeline.captioning.finetune import load_seed_pairs
    from style_pipeline.paths import PROJECT_ROOT

    pairs = load_seed_pairs(PROJECT_ROOT / "data" / "seed_captions")
    assert 4 <= len(pairs) <= 6
    for pair in pairs:
        result = validate_caption(
            f"{TRIGGER}, {pair.caption}", ontology_vocab, allowed_extra=[TRIGGER]
        )
        assert result.valid and not result.repairs, (pair.image.name, result)


@pytest.mark.parametrize(
    ("caption", "expected", "violations"),
    [
        ("teal & orange grade, bird's eye view", "teal & orange grade, bird's eye view", []),
        ("a portrat with bokeh, monochrom", "a portrait with bokeh, black and white", []),
        (
            "a woman walking on a city street",
            "a woman walking on a city street",
            ["woman", "walking"],
        ),
    ],
)
def test_with_the_project_ontology(ontology_vocab, caption, expected, violations):
    result = validate_caption(caption, ontology_vocab)
    assert (result.caption, result.violations) == (expected, violations)
