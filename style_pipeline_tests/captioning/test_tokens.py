"""Token counts with the tiny pipeline's real CLIP tokenizer; truncation at tag boundaries."""

from __future__ import annotations

import json
import shutil

import pytest

from style_pipeline.captioning.postprocess import postprocess_fitted, to_tags
from style_pipeline.captioning.tokens import (
    TokenBudget,
    family_limits,
    load_encoder_tokenizers,
    tokenizer_names,
)
from style_pipeline.contracts.captioning import CaptionConfig
from style_pipeline.contracts.training import TrainingSettings
from style_pipeline.models.diffusion import save_tiny_pipeline
from style_pipeline.stages.captions import token_budget

TRIGGER = "sps_style"
RAW = (
    "a woman in a red coat walking on a wet street at night with neon signs, "
    "rain, reflections, umbrella, crowd, taxi, city lights, bokeh, film grain"
)


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory):
    """The tiny SD pipeline folder (built once; the tokenizer is its real CLIPTokenizer)."""
    return save_tiny_pipeline(tmp_path_factory.mktemp("diffusion"), seed=0)


@pytest.fixture(scope="module")
def budget(pipeline_dir) -> TokenBudget:
    return TokenBudget(load_encoder_tokenizers(pipeline_dir))


def test_counts_are_the_tokenizers_own_with_special_tokens(pipeline_dir, budget):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(pipeline_dir / "tokenizer")
    text = f"{TRIGGER}, woman, red coat"
    assert budget.names == ["tokenizer"]
    assert budget.counts(text) == [len(tokenizer(text).input_ids)]
    assert budget.encoders[0].limit == tokenizer.model_max_length == 77
    assert budget(text)
    assert not budget("x" * 200)


@pytest.mark.parametrize("style", ["tags", "sentence"])
def test_truncation_keeps_whole_tags_and_the_trigger_words(budget, style):
    fitted = postprocess_fitted(
        RAW, TRIGGER, ("film look",), characters=["ohwx_ann"], style=style, fits=budget
    )
    assert fitted.truncated
    assert budget(fitted.caption)
    assert fitted.caption.startswith(f"{TRIGGER}, ohwx_ann, ")
    *parts, style_tag = fitted.caption.split(", ")[2:]
    assert style_tag == "film look"  # style tags go after every body tag
    whole = to_tags(RAW) if style == "tags" else [p.strip() for p in RAW.split(",")]
    assert parts and parts[:-1] == whole[: len(parts) - 1]  # whole tags, cut from the end
    last = whole[len(parts) - 1]
    if style == "tags":
        assert parts[-1] == last  # never a tag cut in the middle
    else:  # a sentence that alone is too long loses words from its end, whole words
        assert (last + " ").startswith(parts[-1] + " ") and parts[-1].split()[-1] != "with"


def test_a_caption_that_fits_is_not_truncated(budget):
    fitted = postprocess_fitted("a red square", TRIGGER, style="tags", fits=budget)
    assert fitted.caption == f"{TRIGGER}, red square"
    assert not fitted.truncated


def test_trigger_words_alone_over_the_limit_raise(budget):
    with pytest.raises(ValueError, match="alone exceeds"):
        postprocess_fitted("a cat", TRIGGER, characters=["y" * 90], fits=budget)


@pytest.fixture
def two_tokenizer_dir(pipeline_dir, tmp_path):
    """An SDXL/FLUX-like folder: ``tokenizer`` and a ``tokenizer_2`` with a 40-token limit."""
    folder = tmp_path / "pipe"
    shutil.copytree(pipeline_dir / "tokenizer", folder / "tokenizer")
    shutil.copytree(pipeline_dir / "tokenizer", folder / "tokenizer_2")
    config = folder / "tokenizer_2" / "tokenizer_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "model_max_length": 40}))
    clip = ["transformers", "CLIPTokenizer"]
    index = {"tokenizer": clip, "unet": [None, None], "tokenizer_2": clip, "vae": ["x", "y"]}
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder


def test_every_encoder_must_fit_and_each_is_counted(two_tokenizer_dir):
    assert tokenizer_names(two_tokenizer_dir) == ["tokenizer", "tokenizer_2"]
    budget = TokenBudget(load_encoder_tokenizers(two_tokenizer_dir))
    assert [e.limit for e in budget.encoders] == [77, 40]
    fitted = postprocess_fitted(RAW, TRIGGER, style="tags", fits=budget)
    counts = budget.counts(fitted.caption)
    assert len(counts) == 2 and max(counts) <= 40
    # FLUX: the CLIP is counted, not enforced; the T5 slot takes max_sequence_length
    flux = TokenBudget(load_encoder_tokenizers(two_tokenizer_dir, family_limits("flux", 60)))
    assert [(e.limit, e.enforced) for e in flux.encoders] == [(77, False), (60, True)]
    assert "not enforced" in flux.describe()
    long = postprocess_fitted(RAW, TRIGGER, style="tags", fits=flux).caption
    assert flux.counts(long)[1] <= 60 < len(long)


def test_the_stage_reads_the_training_presets_tokenizers(pipeline_dir):
    training = TrainingSettings(preset="tiny", model_cache_dir=str(pipeline_dir.parent))
    budget, facts = token_budget(CaptionConfig(), training)
    assert budget.names == ["tokenizer"] and budget.encoders[0].tokenizer is not None
    assert "preset tiny" in str(facts["token_counter_reason"])
    approx, facts = token_budget(CaptionConfig(token_counter="approx"), training)
    assert approx.names == ["approx"] and facts["token_encoders"] == "approx (approx, 77)"


def test_flux_presets_fit_captions_to_the_t5_and_count_the_clip(tmp_path):
    training = TrainingSettings(preset="tiny_flux", model_cache_dir=str(tmp_path))
    budget, facts = token_budget(CaptionConfig(), training)
    assert [(e.name, type(e.tokenizer).__name__, e.limit, e.enforced) for e in budget.encoders] == [
        ("tokenizer", "CLIPTokenizer", 77, False),
        ("tokenizer_2", "T5Tokenizer", 32, True),  # the preset's max_sequence_length
    ]
    assert "flux" in str(facts["token_counter_reason"])
    fitted = postprocess_fitted(RAW, TRIGGER, style="tags", fits=budget)
    assert fitted.truncated and budget.counts(fitted.caption)[1] <= 32
