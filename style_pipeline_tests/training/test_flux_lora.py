"""FLUX.1 LoRA on the tiny random-init FluxPipeline: train, save, reload, determinism."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from style_pipeline.contracts.training import EvalConfig, LoraTrainingConfig
from style_pipeline.models.diffusion import load_pipeline, resolve_diffusion
from style_pipeline.serving.generation import (
    GenerationEngine,
    GenerationParams,
    LoraVersion,
    base_model_path,
)
from style_pipeline.storage.store import Store
from style_pipeline.training.estimates import estimate_resources
from style_pipeline.training.evaluation import generate_samples
from style_pipeline.training.flow_matching import flow_matching_loss, sample_sigmas
from style_pipeline.training.lora_models import attach_lora
from style_pipeline.training.presets import PRESETS, load_preset, preset_path
from style_pipeline.training.trainer import train_and_publish
from style_pipeline_tests.training.conftest import PARTITION


@pytest.fixture(scope="module")
def tiny_flux_model(tmp_path_factory):
    """The tiny FLUX.1 pipeline (dev kind: guidance embedding), saved once per module."""
    cache = tmp_path_factory.mktemp("diffusion_cache_flux")
    return resolve_diffusion("tiny", cache_dir=cache, family="flux")


@pytest.fixture(scope="module")
def flux_runs(tiny_flux_model, tiny_dataset, tmp_path_factory):
    """The tiny_flux preset (4 steps) trained twice from scratch into one store."""
    store = Store(tmp_path_factory.mktemp("flux_store"))
    config = PRESETS["tiny_flux"]
    first = train_and_publish(store, PARTITION, config, tiny_dataset, tiny_flux_model)
    second = train_and_publish(store, PARTITION, config, tiny_dataset, tiny_flux_model)
    return store, first, second


def _image(pipe) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "sks style",
        num_inference_steps=2,
        height=64,
        width=64,
        guidance_scale=3.5,
        max_sequence_length=32,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    return out.images[0]


def test_trains_saves_transformer_lora_and_changes_the_image(flux_runs, tiny_flux_model):
    store, first, _ = flux_runs
    meta = first.metadata
    assert (meta["family"], meta["steps"], meta["model_profile"]) == ("flux", 4, "tiny")
    assert all(np.isfinite(meta["losses"]))
    assert any(n.startswith("attention: Flux") for n in meta["notes"])
    weights = store.local_path(first.weights_key)
    assert weights.name == "pytorch_lora_weights.safetensors"
    with safe_open(str(weights), framework="pt") as fh:
        keys = list(fh.keys())
    assert keys and all(k.startswith("transformer.") for k in keys)
    # to_q/k/v in both block kinds, to_out.0 in the double-stream block
    assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in keys} >= {"to_q", "to_k", "to_v"}
    assert any(".to_out.0.lora_A" in k for k in keys)

    pipe = load_pipeline(tiny_flux_model.path)
    before = _image(pipe)
    pipe.load_lora_weights(str(weights.parent), weight_name=weights.name)
    assert pipe.get_active_adapters()
    after = _image(pipe)
    assert np.isfinite(after).all() and np.abs(after - before).max() > 0


def test_two_runs_are_bit_identical(flux_runs):
    store, first, second = flux_runs
    assert first.metadata["sha256"] == second.metadata["sha256"]
    assert store.read_bytes(first.weights_key) == store.read_bytes(second.weights_key)
    assert first.metadata["losses"] == second.metadata["losses"]


def test_serving_engine_scale_zero_is_the_base_and_one_differs(flux_runs, tmp_path):
    store, first, _ = flux_runs
    version = LoraVersion.from_metadata(first.version, first.metadata)
    # the recorded tiny folder is gone elsewhere: rebuilt from the seed, same bytes
    moved = {**first.metadata, "model_path": str(tmp_path / "gone")}
    assert Path(base_model_path(moved, tmp_path / "cache")).name.startswith("tiny-flux-")
    engine = GenerationEngine(store, tmp_path / "cache", torch.device("cpu"))
    images = [
        np.asarray(engine.generate(GenerationParams("sks style", "", 0, 2, 3.5, s, 64, 64),
                                   version).image).astype(np.int16)
        for s in (0.0, 1.0)
    ]  # fmt: skip
    base = load_pipeline(first.metadata["model_path"])
    base.set_progress_bar_config(disable=True)
    expected = base(
        "sks style", num_inference_steps=2, guidance_scale=3.5, width=64, height=64,
        max_sequence_length=32, generator=torch.Generator("cpu").manual_seed(0),
    ).images[0]  # fmt: skip
    assert np.array_equal(images[0], np.asarray(expected).astype(np.int16))
    assert np.abs(images[1] - images[0]).max() > 0


def test_evaluation_samples_with_the_lora(flux_runs, tiny_flux_model):
    store, first, _ = flux_runs
    config = EvalConfig(prompts=("sks style",), seeds=(0,), num_inference_steps=2, resolution=64)
    lora_dir = store.local_path(first.weights_key).parent
    base = generate_samples(load_pipeline(tiny_flux_model.path), None, config, 32)
    tuned = generate_samples(load_pipeline(tiny_flux_model.path), lora_dir, config, 32)
    assert [s.image.size for s in tuned] == [(64, 64)]
    assert np.abs(np.asarray(tuned[0].image, np.int16) - np.asarray(base[0].image)).max() > 0


def test_uncached_run_matches_the_cached_one(flux_runs, tiny_flux_model, tiny_dataset, tmp_path):
    """Pixels through the VAE and captions through CLIP + T5 on every step draw the same
    randomness as the cached posteriors and text states: the same weights, bit for bit."""
    _, first, _ = flux_runs
    config = PRESETS["tiny_flux"].model_copy(
        update={"cache_latents": False, "cache_text_embeddings": False}
    )
    store = Store(tmp_path / "store")
    uncached = train_and_publish(store, PARTITION, config, tiny_dataset, tiny_flux_model)
    assert uncached.metadata["cache"]["latents"]["used"] is False
    assert uncached.metadata["losses"] == first.metadata["losses"]
    assert uncached.metadata["sha256"] == first.metadata["sha256"]


class _Killed(Exception):
    pass


def _kill_at_step_2(progress) -> None:
    if progress.step == 2:
        raise _Killed


def test_resume_after_a_kill_gives_the_uninterrupted_weights(
    flux_runs, tiny_flux_model, tiny_dataset, tmp_path
):
    _, first, _ = flux_runs
    config = PRESETS["tiny_flux"].model_copy(update={"checkpoint_every_n_steps": 2})
    store = Store(tmp_path / "store")
    with pytest.raises(_Killed):
        train_and_publish(
            store, PARTITION, config, tiny_dataset, tiny_flux_model, progress=_kill_at_step_2
        )
    resumed = train_and_publish(store, PARTITION, config, tiny_dataset, tiny_flux_model).metadata
    assert resumed["resumed_from_step"] == 2
    assert resumed["sha256"] == first.metadata["sha256"]
    assert resumed["losses"] == first.metadata["losses"]


@pytest.mark.parametrize("scheme", ["none", "logit_normal", "mode", "sigma_sqrt", "cosmap"])
def test_weighting_schemes_draw_valid_sigmas_and_a_finite_loss(tiny_flux_model, scheme):
    config = PRESETS["tiny_flux"].model_copy(update={"weighting_scheme": scheme})
    models = attach_lora(load_pipeline(tiny_flux_model.path), config, torch.device("cpu"), "no")
    timesteps, sigmas = sample_sigmas(models, config, 64, torch.Generator().manual_seed(0))
    again = sample_sigmas(models, config, 64, torch.Generator().manual_seed(0))
    assert torch.equal(sigmas, again[1]) and ((sigmas > 0) & (sigmas <= 1)).all()
    assert torch.allclose(timesteps, sigmas * 1000)  # FLUX.1-dev: shift applied at inference
    batch = {
        "pixel_values": torch.rand(2, 3, 64, 64) * 2 - 1,
        "captions": ["sks style, a", "sks style, b"],
    }
    loss = flow_matching_loss(models, batch, config, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in models.params)


def test_estimate_of_flux_dev_without_weights_assumes_its_sizes(tmp_path, tiny_flux_model):
    estimate = estimate_resources(PRESETS["flux_dev"], tmp_path, 20, device="cuda")
    assert "FLUX.1-dev sizes assumed" in estimate.basis
    assert estimate.parameters["transformer"] > 11e9 and estimate.lora_parameters > 0
    assert 30 < estimate.memory_gb < 80 and "transformer" in estimate.summary()
    tiny = estimate_resources(PRESETS["tiny_flux"], Path(tiny_flux_model.path), 4, device="cpu")
    assert tiny.parameters["transformer"] < 1e6 and tiny.lora_parameters > 0


@pytest.mark.parametrize("name", ["flux_dev", "flux_schnell", "tiny_flux"])
def test_flux_presets_load(name):
    config = load_preset(preset_path(name))
    assert config == PRESETS[name] and config.model_family == "flux"
    assert config.mixed_precision == ("no" if name.startswith("tiny") else "bf16")


@pytest.mark.parametrize(
    "fields",
    [
        {"guidance_scale": 3.5},  # flux-only field on SD
        {"model_family": "flux", "snr_gamma": 5.0},
        {"model_family": "flux", "train_text_encoder": True},
        {"model_family": "flux", "resolution": 520},  # not a multiple of 16
        {"model_family": "flux", "max_sequence_length": 1024},
    ],
)
def test_invalid_flux_fields(fields):
    with pytest.raises(ValueError):
        LoraTrainingConfig(**fields)
