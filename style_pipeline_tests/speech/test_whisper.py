"""The Whisper model through the resolver: the tiny build carries everything generation needs."""

from __future__ import annotations

import pytest

from style_pipeline.contracts.speech import WhisperModelConfig
from style_pipeline.models.profiles import PretrainedUnavailable
from style_pipeline.models.whisper import (
    TIMESTAMP_COUNT,
    load_whisper,
    load_whisper_pretrained,
    whisper_entry,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    config = WhisperModelConfig(profile="tiny", cache_dir=str(tmp_path_factory.mktemp("m")))
    return load_whisper(config)


def test_tiny_whisper_has_whisper_vocabulary_and_generation_config(tiny):
    tokenizer = tiny.processor.tokenizer
    generation = tiny.model.generation_config
    no_ts = tokenizer.convert_tokens_to_ids("<|notimestamps|>")
    assert tokenizer.all_special_ids[-1] == no_ts  # the tokenizer's timestamp_begin - 1
    assert generation.no_timestamps_token_id == no_ts
    assert tiny.model.config.vocab_size == no_ts + 1 + TIMESTAMP_COUNT
    assert len(generation.lang_to_id) == 99 and "<|en|>" in generation.lang_to_id
    assert set(generation.task_to_id) == {"transcribe", "translate"}
    assert generation.alignment_heads  # word timestamps
    assert tokenizer.convert_tokens_to_ids("<|nospeech|>") != tokenizer.unk_token_id
    text = " good question"
    ids = tokenizer(text, add_special_tokens=False).input_ids
    assert tokenizer.decode(ids) == text  # byte-level BPE: any text round-trips
    assert tiny.profile_used == "tiny" and tiny.model_id.startswith("tiny-whisper@sha256:")
    assert tiny.processor.feature_extractor.sampling_rate == 16000


def test_tiny_whisper_is_rebuilt_identically(tiny, tmp_path):
    again = load_whisper(WhisperModelConfig(profile="tiny", cache_dir=str(tmp_path)))
    assert again.model_id == tiny.model_id  # seeded: the same weights digest


def test_pretrained_missing_offline_raises_and_auto_falls_back(tmp_path):
    config = WhisperModelConfig(
        profile="pretrained",
        pretrained="openai/whisper-none-here",
        cache_dir=str(tmp_path),
        hf_cache_dir=str(tmp_path / "hf"),
    )
    with pytest.raises(PretrainedUnavailable, match="whisper-none-here"):
        load_whisper_pretrained(config)
    with pytest.warns(RuntimeWarning, match="FELL BACK TO TINY"):
        loaded = load_whisper(config.model_copy(update={"profile": "auto"}))
    assert loaded.profile_used == "tiny"
    assert "models pull whisper" in (loaded.fallback_reason or "")


def test_registry_entry_names_the_hub_id():
    entry = whisper_entry(WhisperModelConfig())
    assert (entry.name, entry.kind, entry.source) == ("whisper", "transformers",
                                                      "openai/whisper-small")  # fmt: skip
    assert entry.pullable
