"""kohya's caption options: dropout rates, kept tokens, shuffled tags, replay on resume."""

from __future__ import annotations

import math

import pytest
import torch

from style_pipeline.storage.store import Store
from style_pipeline.training.caption_augment import (
    CaptionAugment,
    augment_caption,
    possible_captions,
    split_tags,
)
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.trainer import train_and_publish
from style_pipeline_tests.training.conftest import PARTITION
from style_pipeline_tests.training.factories import Killed, kill_at

CAPTION = "sks style, alice, red coat, city street, night, rain, neon lights, umbrella"
TAGS = split_tags(CAPTION)
DRAWS = 4000


def _within_binomial(hits: int, trials: int, rate: float, sigmas: float = 5.0) -> bool:
    spread = sigmas * math.sqrt(trials * rate * (1 - rate))
    return abs(hits - trials * rate) <= spread


def _draws(options: CaptionAugment, n: int = DRAWS, seed: int = 0) -> list[str]:
    generator = torch.Generator().manual_seed(seed)
    return [augment_caption(CAPTION, options, generator) for _ in range(n)]


def test_caption_dropout_rate_within_binomial_tolerance():
    out = _draws(CaptionAugment(caption_dropout_rate=0.1, keep_tokens=2))
    dropped = sum(c == "" for c in out)
    assert _within_binomial(dropped, DRAWS, 0.1), dropped
    assert set(out) == {"", CAPTION}  # dropout alone never touches the tags


def test_tag_dropout_rate_and_kept_tokens():
    keep = 2
    out = _draws(CaptionAugment(caption_tag_dropout_rate=0.3, keep_tokens=keep))
    free = len(TAGS) - keep
    dropped = 0
    for caption in out:
        tags = split_tags(caption)
        assert tags[:keep] == TAGS[:keep]  # never dropped, never moved
        rest = tags[keep:]
        assert rest == [t for t in TAGS[keep:] if t in rest]  # no shuffle: order kept
        dropped += free - len(rest)
    assert _within_binomial(dropped, DRAWS * free, 0.3), dropped / (DRAWS * free)


def test_shuffle_is_a_permutation_of_the_free_tags_only():
    keep = 3
    out = _draws(CaptionAugment(shuffle_tags=True, keep_tokens=keep), n=500)
    orders = set()
    for caption in out:
        tags = split_tags(caption)
        assert tags[:keep] == TAGS[:keep]
        assert sorted(tags[keep:]) == sorted(TAGS[keep:])
        orders.add(tuple(tags[keep:]))
    assert len(orders) > 100  # 5! = 120 orders: nearly all of them show up
    # every free tag visits the first free slot about equally often
    firsts = [split_tags(c)[keep] for c in out]
    for tag in TAGS[keep:]:
        assert _within_binomial(firsts.count(tag), len(out), 1 / (len(TAGS) - keep))


def test_all_options_together_keep_the_kept_tokens():
    options = CaptionAugment(0.2, 0.5, 1, True)
    for caption in _draws(options, n=1000):
        if caption:
            tags = split_tags(caption)
            assert tags[0] == TAGS[0] and set(tags[1:]) <= set(TAGS[1:])
            assert len(set(tags)) == len(tags)


def test_nothing_is_drawn_when_every_option_is_off():
    generator = torch.Generator().manual_seed(3)
    state = generator.get_state()
    assert augment_caption(CAPTION, CaptionAugment(keep_tokens=5), generator) == CAPTION
    assert torch.equal(generator.get_state(), state)


def test_same_generator_state_gives_the_same_captions():
    options = CaptionAugment(0.1, 0.3, 1, True)
    assert _draws(options, n=50, seed=7) == _draws(options, n=50, seed=7)
    assert _draws(options, n=50, seed=7) != _draws(options, n=50, seed=8)


def test_possible_captions_for_the_text_cache():
    captions = ["b, x", "a, y"]
    assert possible_captions(captions, CaptionAugment()) == ["a, y", "b, x"]
    assert possible_captions(captions, CaptionAugment(caption_dropout_rate=0.1)) == [
        "",
        "a, y",
        "b, x",
    ]
    assert possible_captions(captions, CaptionAugment(shuffle_tags=True)) is None
    assert possible_captions(captions, CaptionAugment(caption_tag_dropout_rate=0.1)) is None


AUGMENTED = PRESETS["tiny"].model_copy(
    update={
        "random_flip": True,
        "train_batch_size": 2,
        "max_train_steps": 6,
        "checkpoint_every_n_steps": 2,
        "caption_dropout_rate": 0.3,
        "caption_tag_dropout_rate": 0.3,
        "shuffle_tags": True,
        "keep_tokens": 1,
    }
)


@pytest.mark.slow
def test_resume_with_caption_augmentation_is_bit_identical(tiny_model, tiny_dataset, tmp_path):
    straight_config = AUGMENTED.model_copy(update={"checkpoint_every_n_steps": 0})
    straight = train_and_publish(
        Store(tmp_path / "a"), PARTITION, straight_config, tiny_dataset, tiny_model
    ).metadata
    assert straight["cache"]["text"] == {
        "used": False,
        "reason": "shuffle_tags / caption_tag_dropout_rate: the captions change every step",
    }
    store = Store(tmp_path / "b")
    with pytest.raises(Killed):
        train_and_publish(
            store, PARTITION, AUGMENTED, tiny_dataset, tiny_model, progress=kill_at(3)
        )
    resumed = train_and_publish(store, PARTITION, AUGMENTED, tiny_dataset, tiny_model).metadata
    assert resumed["resumed_from_step"] == 2
    assert resumed["sha256"] == straight["sha256"]
    assert resumed["losses"] == straight["losses"]


@pytest.mark.slow
def test_caption_dropout_alone_is_served_by_the_text_cache(tiny_model, tiny_dataset, tmp_path):
    config = PRESETS["tiny"].model_copy(update={"caption_dropout_rate": 0.5})
    meta = train_and_publish(
        Store(tmp_path / "s"), PARTITION, config, tiny_dataset, tiny_model
    ).metadata
    text = meta["cache"]["text"]
    assert text["used"] is True
    assert text["misses"] == 5  # four captions and ""
