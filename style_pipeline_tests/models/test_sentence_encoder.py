"""The sentence encoder: tiny random-init BERT through the resolver, unit vectors, offline."""

from __future__ import annotations

import numpy as np
import pytest

from style_pipeline.contracts.alignment import SentenceEncoderConfig
from style_pipeline.models.profiles import PretrainedUnavailable
from style_pipeline.models.sentence import load_sentence_encoder, sentence_entry


@pytest.fixture
def config(tmp_path) -> SentenceEncoderConfig:
    return SentenceEncoderConfig(
        profile="tiny", cache_dir=str(tmp_path / "models"), device="cpu", batch_size=2
    )


def test_tiny_encoder_gives_unit_vectors_deterministically(config):
    encoder = load_sentence_encoder(config)
    texts = ["what texture pack is that?", "Good question, it is Faithful.", "", "lol"]
    vectors = encoder.encode(texts)
    assert vectors.shape == (4, config.tiny.hidden) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    again = load_sentence_encoder(config).encode(texts)  # reloaded from the cache folder
    assert np.array_equal(vectors, again)
    # batching does not change a text's vector (padding is masked out of the mean)
    alone = encoder.encode(texts[:1])
    assert np.allclose(alone[0], vectors[0], atol=1e-5)
    assert encoder.encode([]).shape == (0, config.tiny.hidden)
    meta = encoder.metadata()
    assert meta["encoder_profile_used"] == "tiny" and "@sha256:" in meta["encoder_model_id"]


def test_pretrained_missing_raises_and_auto_falls_back(config, tmp_path):
    missing = config.model_copy(
        update={
            "profile": "pretrained",
            "pretrained": "nobody/no-such-encoder",
            "hf_cache_dir": str(tmp_path / "hf"),
        }  # fmt: skip
    )
    with pytest.raises(PretrainedUnavailable, match="no-such-encoder"):
        load_sentence_encoder(missing)
    with pytest.warns(RuntimeWarning, match="FELL BACK TO TINY"):
        encoder = load_sentence_encoder(missing.model_copy(update={"profile": "auto"}))
    assert encoder.profile_used == "tiny" and encoder.profile_requested == "auto"
    assert "models pull sentence-encoder" in (encoder.fallback_reason or "")


def test_registry_entry_names_the_hub_id():
    entry = sentence_entry(SentenceEncoderConfig())
    assert (entry.name, entry.kind, entry.source) == (
        "sentence-encoder",
        "transformers",
        "sentence-transformers/all-MiniLM-L6-v2",
    )
    assert entry.pullable
