"""Presets, their YAML files, config hashing and the resource estimates."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.training.estimates import count_parameters, estimate_resources
from style_pipeline.training.presets import PRESETS, config_to_yaml, load_preset, preset_path
from style_pipeline.training.train_loop import plan_steps


@pytest.mark.parametrize(
    ("name", "resolution", "rank"),
    [("sd15", 512, 16), ("sdxl", 1024, 32), ("fast", 512, 8), ("high_quality", 512, 64)],
)
def test_preset_sizes(name, resolution, rank):
    config = load_preset(name)
    assert (config.resolution, config.rank, config.name) == (resolution, rank, name)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_yaml_file_matches_builtin(name):
    assert preset_path(name).is_file()
    assert load_preset(preset_path(name)) == PRESETS[name]
    assert load_preset(str(preset_path(name))) == load_preset(name)


def test_yaml_roundtrip_and_alpha_default(tmp_path):
    config = LoraTrainingConfig(name="mine", rank=12, learning_rate=3e-4)
    path = tmp_path / "mine.yml"
    path.write_text(config_to_yaml(config))
    loaded = load_preset(path)
    assert loaded == config
    assert loaded.lora_alpha == 12.0
    assert LoraTrainingConfig(rank=12, alpha=6).lora_alpha == 6.0


def test_unknown_preset_and_bad_yaml(tmp_path):
    with pytest.raises(ValueError, match="unknown preset"):
        load_preset("nope")
    with pytest.raises(FileNotFoundError):
        load_preset(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("rank: 8\nrnak: 9\n")
    with pytest.raises(ValidationError, match="rnak"):
        load_preset(bad)
    listy = tmp_path / "list.yml"
    listy.write_text("- 1\n")
    with pytest.raises(ValueError, match="mapping"):
        load_preset(listy)


@pytest.mark.parametrize("field", [{"resolution": 500}, {"rank": 0}, {"target_modules": ()}])
def test_invalid_values(field):
    with pytest.raises(ValidationError):
        LoraTrainingConfig(**field)


def test_config_hash_ignores_name_only():
    base = LoraTrainingConfig()
    assert base.config_hash() == LoraTrainingConfig(name="other").config_hash()
    assert base.config_hash() != LoraTrainingConfig(seed=1).config_hash()
    assert len(base.config_hash()) == 64


@pytest.mark.parametrize(
    ("batches", "accum", "max_steps", "epochs", "expected"),
    [
        (10, 1, None, 3, (30, 3)),
        (10, 4, None, 2, (6, 2)),
        (10, 1, 25, 1, (25, 3)),
        (3, 2, 4, 9, (4, 2)),
    ],
)
def test_plan_steps(batches, accum, max_steps, epochs, expected):
    config = LoraTrainingConfig(
        gradient_accumulation_steps=accum, max_train_steps=max_steps, num_train_epochs=epochs
    )
    assert plan_steps(batches, config) == expected


def test_estimates_from_tiny_pipeline(tiny_model):
    from style_pipeline.models.diffusion import load_pipeline

    counts = count_parameters(tiny_model.path)
    pipe = load_pipeline(tiny_model.path)
    assert counts["unet"] == sum(p.numel() for p in pipe.unet.parameters())
    assert counts["text_encoder"] == sum(p.numel() for p in pipe.text_encoder.parameters())

    tiny = PRESETS["tiny"]
    base = estimate_resources(tiny, tiny_model.path, n_images=8, device="cpu")
    assert base.latent_size == 32  # the tiny VAE downsamples 2x
    assert base.total_steps == 4 and base.lora_parameters > 0
    bigger = estimate_resources(
        tiny.model_copy(update={"train_batch_size": 4}), tiny_model.path, 8, "cpu"
    )
    assert bigger.memory_gb > base.memory_gb and bigger.step_seconds > base.step_seconds
    lean = estimate_resources(
        tiny.model_copy(update={"gradient_checkpointing": True}), tiny_model.path, 8, "cpu"
    )
    assert lean.memory_gb < base.memory_gb
    epochs = tiny.model_copy(update={"max_train_steps": None, "num_train_epochs": 3})
    assert estimate_resources(epochs, tiny_model.path, n_images=8, device="cpu").total_steps == 24
    assert "s/step" in base.summary()


def test_estimates_without_weights_fall_back_to_sd15(tmp_path):
    estimate = estimate_resources(PRESETS["sd15"], tmp_path, n_images=100, device="cuda")
    assert estimate.parameters["unet"] > 800_000_000
    assert "SD 1.5 sizes assumed" in estimate.basis
    assert estimate.latent_size == 64 and estimate.lora_parameters == 199_296 * 16
    assert 1 < estimate.memory_gb < 24
    xl = estimate_resources(PRESETS["sdxl"], tmp_path, n_images=100, device="cuda")
    assert "SDXL" in xl.basis and xl.latent_size == 128 and xl.memory_gb > estimate.memory_gb
    assert xl.step_seconds > estimate.step_seconds
