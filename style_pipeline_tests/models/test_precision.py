"""fp16/bf16 CLIP: inputs cast to the weights, float32 unit vectors out, fallbacks said.

Also the device helpers behind it: the input dtype of a half model, precision fallbacks
and the batch size picked from free memory.
"""

from __future__ import annotations

import hashlib
import io
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.embeddings import (
    ImageRef,
    embed_images,
    embed_refs,
    embed_texts,
    resolve_batch_size,
)
from style_pipeline.models import clip as clip_module
from style_pipeline.models import load_model
from style_pipeline.models.device import auto_batch_size, precision_candidates, weight_dtype
from style_pipeline.storage.store import Store
from style_pipeline.training.evaluation import score_samples
from style_pipeline.training.reward import BrandMLP, RewardModel
from style_pipeline_tests.curation.factories import scene

TEXTS = ["a photo of a cat.", "golden hour lighting.", "a neon street at night."]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def models(cache_dir):
    return {
        p: load_model(ModelConfig(profile="tiny", cache_dir=cache_dir, precision=p, device="cpu"))
        for p in ("fp32", "bf16", "fp16")
    }


@pytest.fixture(scope="module")
def images():
    return [Image.fromarray(scene(seed, 72, 96)) for seed in range(6)]


def _row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _unit_float32(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.dtype == np.float32 and vectors.shape == (n, dim)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_bf16_weights_are_half_and_the_input_dtype_follows(models):
    bf16 = models["bf16"]
    assert bf16.precision == bf16.precision_requested == "bf16" and bf16.precision_note is None
    assert bf16.input_dtype == torch.bfloat16 == weight_dtype(bf16.model.visual)
    assert models["fp32"].input_dtype == torch.float32
    meta = bf16.metadata()
    assert (meta["precision_requested"], meta["precision"], meta["precision_note"]) == (
        "bf16",
        "bf16",
        "",
    )


def test_bf16_image_and_text_vectors_match_fp32(models, images):
    fp32, bf16 = models["fp32"], models["bf16"]
    assert fp32.model_id == bf16.model_id  # same weights, so the same embedding cache
    ref_images, half_images = embed_images(fp32, images), embed_images(bf16, images, batch_size=4)
    _unit_float32(half_images, len(images), bf16.dim)
    assert _row_cosines(ref_images, half_images).min() >= 0.99
    ref_texts, half_texts = embed_texts(fp32, TEXTS), embed_texts(bf16, TEXTS)
    _unit_float32(half_texts, len(TEXTS), bf16.dim)
    assert _row_cosines(ref_texts, half_texts).min() >= 0.99


def test_fp16_runs_or_falls_back_as_documented(models, images):
    fp16 = models["fp16"]
    assert fp16.precision_requested == "fp16"
    if fp16.precision == "fp16":  # torch 2.x runs fp16 on CPU
        assert fp16.precision_note is None and fp16.input_dtype == torch.float16
    else:
        assert fp16.precision in ("bf16", "fp32") and "fp16 does not run" in fp16.precision_note
    vectors = embed_images(fp16, images)
    _unit_float32(vectors, len(images), fp16.dim)
    assert _row_cosines(embed_images(models["fp32"], images), vectors).min() >= 0.99
    text = embed_texts(fp16, TEXTS)
    assert _row_cosines(embed_texts(models["fp32"], TEXTS), text).min() >= 0.99


def test_a_precision_the_device_cannot_run_falls_back_with_a_reason(cache_dir, monkeypatch, caplog):
    real = clip_module.probe_precision

    def no_fp16(model, tokenizer, device):
        if weight_dtype(model.visual) == torch.float16:
            return "RuntimeError: \"addmm_impl_cpu_\" not implemented for 'Half'"
        return real(model, tokenizer, device)

    monkeypatch.setattr(clip_module, "probe_precision", no_fp16)
    config = ModelConfig(profile="tiny", cache_dir=cache_dir, precision="fp16", device="cpu")
    with caplog.at_level(logging.WARNING, logger="style_pipeline.models.clip"):
        loaded = load_model(config)
    assert (loaded.precision_requested, loaded.precision) == ("fp16", "bf16")
    assert loaded.input_dtype == torch.bfloat16
    assert "fp16 does not run on cpu" in loaded.precision_note
    assert "not implemented for 'Half'" in loaded.metadata()["precision_note"]
    assert "running in bf16" in caplog.text

    monkeypatch.setattr(clip_module, "probe_precision", lambda *a: "non-finite embeddings")
    fp32 = load_model(config)
    assert fp32.precision == "fp32" and fp32.input_dtype == torch.float32
    assert "bf16 does not run" in fp32.precision_note


def test_embed_refs_from_storage_in_bf16(models, tmp_path):
    store = Store(str(tmp_path))
    refs = []
    for i in range(5):
        buffer = io.BytesIO()
        Image.fromarray(scene(40 + i, 90, 160)).save(buffer, format="JPEG", quality=90)
        key = store.put_bytes(buffer.getvalue(), f"frames/{i}.jpg")
        refs.append(ImageRef(hashlib.sha256(buffer.getvalue()).hexdigest(), key))
    full = embed_refs(models["fp32"], refs, store, batch_size=2, draft=False).vectors
    half = embed_refs(models["bf16"], refs, store, batch_size=2, draft=False, workers=2)
    _unit_float32(half.vectors, 5, models["bf16"].dim)
    assert _row_cosines(full, half.vectors).min() >= 0.99


def test_clip_score_and_reward_in_bf16(models, images, monkeypatch, tmp_path):
    from style_pipeline.training.evaluation import Sample

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))  # FID on CLIP features
    samples = [Sample(TEXTS[i % 3], 0, image) for i, image in enumerate(images[:3])]
    dim = models["fp32"].dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        mlp = BrandMLP(dim, 8)
    info = {"dim": dim, "hidden": 8, "embedding_model": models["fp32"].model_id}
    reward = RewardModel(mlp, info)
    full = score_samples(samples, images[3:], models["fp32"], reward)
    half = score_samples(samples, images[3:], models["bf16"], reward)
    assert (full["clip_precision"], half["clip_precision"]) == ("fp32", "bf16")
    assert half["clip_score"] == pytest.approx(full["clip_score"], abs=1.0)
    assert half["brand_score"] == pytest.approx(full["brand_score"], abs=0.02)
    # a half-precision reward MLP scores float32 embeddings and answers float32
    vectors = embed_images(models["fp32"], images)
    half_reward = RewardModel(BrandMLP(dim, 8), info)
    half_reward.mlp.load_state_dict(mlp.state_dict())
    half_reward.mlp.to(torch.bfloat16)
    scores = half_reward.score(vectors)
    assert scores.dtype == np.float32
    np.testing.assert_allclose(scores, reward.score(vectors), atol=0.02)


def test_precision_candidates_end_in_fp32():
    assert precision_candidates("fp16") == ("fp16", "bf16", "fp32")
    assert precision_candidates("bf16") == ("bf16", "fp32")
    assert precision_candidates("fp32") == ("fp32",)
    with pytest.raises(ValueError, match="unknown precision"):
        precision_candidates("int8")


def test_auto_batch_size_from_free_memory(models, monkeypatch):
    cpu = torch.device("cpu")
    assert auto_batch_size(cpu, 10**6) == 32
    assert resolve_batch_size(models["fp32"], "auto") == 32
    assert resolve_batch_size(models["fp32"], 7) == 7
    import style_pipeline.models.device as device_module

    monkeypatch.setattr(device_module, "free_memory", lambda device: 80 * 2**30)
    size = auto_batch_size(torch.device("cuda"), 50 * 2**20)  # 40 GiB / 50 MiB = 819
    assert size == 816
    assert auto_batch_size(torch.device("cuda"), 1) == 1024  # capped
    assert auto_batch_size(torch.device("cuda"), 2**40) == 8  # floor
