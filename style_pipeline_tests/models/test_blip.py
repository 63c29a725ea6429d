"""BLIP profiles: tiny is built, saved and re-loaded; auto falls back to tiny with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from style_pipeline.contracts.models import BlipModelConfig
from style_pipeline.models.blip import SPECIAL_TOKENS, WEIGHTS_NAME, load_blip, tiny_vocabulary
from style_pipeline.models.profiles import PretrainedUnavailable

WORDS = ["a", "photo", "of", "woman", "street", "golden hour"]


def _config(tmp_path, **kwargs) -> BlipModelConfig:
    return BlipModelConfig(cache_dir=str(tmp_path / "models"), device="cpu", **kwargs)


def _logits(loaded) -> torch.Tensor:
    image = Image.new("RGB", (64, 64), (200, 40, 40))
    inputs = loaded.processor(images=[image], text=["a photo of"], return_tensors="pt")
    with torch.inference_mode():
        return loaded.model(**inputs).logits


def test_tiny_vocabulary_starts_with_specials_and_has_no_duplicates():
    vocab = tiny_vocabulary(["Woman", "woman", "golden hour"])
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert len(vocab) == len(set(vocab))
    assert {"woman", "golden", "hour", "z", "##z"} <= set(vocab)


def test_tiny_is_saved_and_reloaded_with_identical_outputs(tmp_path):
    first = load_blip(_config(tmp_path / "a", profile="tiny"), WORDS)
    again = load_blip(_config(tmp_path / "a", profile="tiny"), WORDS)
    rebuilt = load_blip(_config(tmp_path / "b", profile="tiny"), WORDS)
    assert first.profile_used == "tiny" and first.fallback_reason is None
    assert (tmp_path / "a" / "models").is_dir() and first.source.startswith(str(tmp_path / "a"))
    assert first.source == again.source
    assert first.model_id == rebuilt.model_id  # same seed -> same weights bytes
    reference = _logits(first)
    assert torch.equal(reference, _logits(again))
    assert torch.equal(reference, _logits(rebuilt))
    assert reference.shape[-1] == len(tiny_vocabulary(WORDS))
    tokens = first.processor.tokenizer("a woman on a street")["input_ids"]
    assert first.processor.tokenizer.unk_token_id not in tokens


def test_tiny_generates_text(tmp_path):
    loaded = load_blip(_config(tmp_path, profile="tiny"), WORDS)
    inputs = loaded.processor(images=[Image.new("RGB", (80, 64))], return_tensors="pt")
    out = loaded.model.generate(**inputs, max_new_tokens=5)
    assert out.shape[0] == 1 and 1 < out.shape[1] <= 7
    assert isinstance(loaded.processor.batch_decode(out, skip_special_tokens=True)[0], str)


def test_auto_falls_back_to_tiny_with_a_reason(tmp_path):
    config = _config(tmp_path, profile="auto", pretrained=str(tmp_path / "no-such-blip"))
    with pytest.warns(RuntimeWarning, match="FELL BACK TO TINY"):
        loaded = load_blip(config, WORDS)
    assert loaded.profile_requested == "auto"
    assert loaded.profile_used == "tiny"
    assert "no-such-blip" in loaded.fallback_reason
    assert loaded.metadata()["caption_fallback_reason"] == loaded.fallback_reason


def test_pretrained_never_downloads(tmp_path):
    config = _config(tmp_path, profile="pretrained", hf_cache_dir=str(tmp_path / "empty_hf"))
    with pytest.raises(PretrainedUnavailable, match="offline"):
        load_blip(config, WORDS)


def test_pretrained_loads_a_local_directory(tmp_path):
    tiny = load_blip(_config(tmp_path, profile="tiny"), WORDS)
    assert (Path(tiny.source) / WEIGHTS_NAME).is_file()
    config = _config(tmp_path, profile="auto", pretrained=tiny.source)
    loaded = load_blip(config)
    assert loaded.profile_used == "pretrained" and loaded.fallback_reason is None
    assert loaded.source == tiny.source
    assert type(loaded.model).__name__ == "BlipForConditionalGeneration"
    assert torch.equal(_logits(loaded), _logits(tiny))


def test_default_tiny_vocabulary_covers_the_ontology(tmp_path):
    from style_pipeline.captioning.vocabulary import caption_words, load_default_ontology

    words = caption_words(load_default_ontology())
    loaded = load_blip(_config(tmp_path, profile="tiny"), words)
    tokenizer = loaded.processor.tokenizer
    assert "cityscape" in words and "the" in words
    plain = [w for w in words if w.isalnum()]
    ids = tokenizer(" ".join(plain), add_special_tokens=False)["input_ids"]
    assert len(ids) == len(plain)  # every plain ontology word is one whole token
    assert tokenizer.unk_token_id not in tokenizer(" ".join(words))["input_ids"]
