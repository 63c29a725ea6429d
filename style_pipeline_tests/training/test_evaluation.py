"""Evaluation: Fréchet distance, CLIP-based scores, generation with a LoRA, regression flags."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from style_pipeline.contracts.models import ModelConfig
from style_pipeline.contracts.training import EvalConfig, Tolerance
from style_pipeline.models import load_model
from style_pipeline.models.diffusion import load_pipeline
from style_pipeline.training.evaluation import (
    aesthetic_clip_proxy,
    clip_score,
    compare,
    generate_samples,
    regressions,
    score_samples,
)
from style_pipeline.training.fid import (
    feature_stats,
    fid_from_features,
    find_inception_weights,
    frechet_distance,
)
from style_pipeline.training.lora_models import attach_lora, save_lora
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.reward import assemble_examples, train_reward_model


@pytest.mark.parametrize(
    ("mu1", "s1", "mu2", "s2", "expected"),
    [
        ([0.0], [[1.0]], [0.0], [[1.0]], 0.0),
        ([0.0], [[1.0]], [2.0], [[1.0]], 4.0),
        ([0.0, 0.0], [[4.0, 0], [0, 1.0]], [0.0, 0.0], [[1.0, 0], [0, 1.0]], 1.0),
        ([1.0, 1.0], [[1.0, 0], [0, 9.0]], [0.0, 0.0], [[1.0, 0], [0, 1.0]], 2.0 + 4.0),
    ],
)
def test_frechet_distance_closed_forms(mu1, s1, mu2, s2, expected):
    got = frechet_distance(np.array(mu1), np.array(s1), np.array(mu2), np.array(s2))
    assert got == pytest.approx(expected, abs=1e-6)


def test_fid_of_a_set_with_itself_is_zero_and_shift_is_not():
    x = np.random.default_rng(0).normal(size=(12, 64))  # fewer rows than dims: singular cov
    assert fid_from_features(x, x) == pytest.approx(0.0, abs=1e-3)
    assert fid_from_features(x, x + 1.0) == pytest.approx(64.0, rel=1e-3)
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(x[:1])


@pytest.mark.parametrize(
    ("image", "text", "score"),
    [
        ([[1.0, 0.0]], [[1.0, 0.0]], 100.0),
        ([[1.0, 0.0]], [[0.0, 1.0]], 0.0),
        ([[1.0, 0.0]], [[-1.0, 0.0]], 0.0),
        ([[1.0, 0.0], [0.6, 0.8]], [[1.0, 0.0], [1.0, 0.0]], 80.0),
    ],
)
def test_clip_score(image, text, score):
    assert clip_score(np.array(image), np.array(text)) == pytest.approx(score)


def test_aesthetic_proxy_prefers_the_positive_prompt():
    prompts = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert aesthetic_clip_proxy(np.array([[0.9, 0.1]]), prompts) > 0.99
    assert aesthetic_clip_proxy(np.array([[0.1, 0.9]]), prompts) < 0.01


@pytest.mark.parametrize(
    ("current", "previous", "regressed"),
    [
        ({"clip_score": 30.0}, {"clip_score": 31.0}, ["clip_score"]),
        ({"clip_score": 30.8}, {"clip_score": 31.0}, []),
        ({"brand_score": 0.5}, {"brand_score": 0.6}, ["brand_score"]),
        ({"fid": 120.0, "fid_feature": "clip"}, {"fid": 100.0, "fid_feature": "clip"}, ["fid"]),
        ({"fid": 105.0, "fid_feature": "clip"}, {"fid": 100.0, "fid_feature": "clip"}, []),
        ({"fid": 5.0, "fid_feature": "clip"}, {"fid": 1.0, "fid_feature": "clip"}, ["fid"]),
        ({"aesthetic_clip_proxy": 0.9}, {"aesthetic_clip_proxy": 0.5}, []),
    ],
)
def test_compare_flags(current, previous, regressed):
    flags = compare(current, previous)
    assert [f["metric"] for f in regressions(flags)] == regressed
    assert len(flags) == 1


def test_compare_skips_what_cannot_be_compared():
    assert compare({"clip_score": 1.0}, None) == []
    fids = compare(
        {"fid": 9.0, "fid_feature": "clip"}, {"fid": 1.0, "fid_feature": "inception_v3_torchvision"}
    )
    assert fids == []
    assert compare({"brand_score": None}, {"brand_score": 0.5}) == []
    strict = compare({"clip_score": 30.9}, {"clip_score": 31.0}, {"clip_score": Tolerance()})
    assert strict[0].regressed and strict[0].delta == pytest.approx(-0.1)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    cache = tmp_path_factory.mktemp("clip_cache")
    return load_model(ModelConfig(profile="tiny", cache_dir=str(cache), device="cpu"))


@pytest.mark.slow
def test_generate_and_score_with_a_lora(tiny_model, clip, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # no cached Inception
    assert find_inception_weights() is None
    base = load_pipeline(tiny_model.path)
    save_lora(attach_lora(base, PRESETS["tiny"], torch.device("cpu"), "no"), tmp_path / "lora")
    config = EvalConfig(
        prompts=("sks style", "a sks style photo"), seeds=(0,), num_inference_steps=2, resolution=64
    )
    samples = generate_samples(load_pipeline(tiny_model.path), tmp_path / "lora", config)
    again = generate_samples(load_pipeline(tiny_model.path), tmp_path / "lora", config)
    assert [(s.prompt, s.seed) for s in samples] == [("sks style", 0), ("a sks style photo", 0)]
    assert all(s.image.size == (64, 64) for s in samples)
    assert np.array_equal(np.asarray(samples[0].image), np.asarray(again[0].image))

    rng = np.random.default_rng(0)
    reference = [
        Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)) for _ in range(3)
    ]
    ids = [f"f{i}" for i in range(12)]
    vectors = rng.normal(size=(12, clip.dim)).astype(np.float32)
    examples = assemble_examples(ids, vectors, set(ids[:6]), set(ids[6:]))
    reward = train_reward_model(examples, embedding_model=clip.model_id)
    metrics = score_samples(samples, reference, clip, reward)
    for key in ("clip_score", "brand_score", "aesthetic_clip_proxy", "fid"):
        assert math.isfinite(metrics[key]), key
    assert 0 <= metrics["brand_score"] <= 1 and 0 <= metrics["aesthetic_clip_proxy"] <= 1
    assert metrics["fid_feature"] == "clip" and metrics["fid"] >= 0
    assert (metrics["n_samples"], metrics["n_reference"]) == (2, 3)
    self_fid = score_samples(samples, [s.image for s in samples], clip)["fid"]
    assert self_fid == pytest.approx(0.0, abs=1e-3)

    reward.info["embedding_model"] = "some-other-clip"
    with pytest.raises(ValueError, match="reward model uses"):
        score_samples(samples, reference, clip, reward)
