"""LoRA training on tiny models: saved keys, loading into a pipeline, determinism, pruning."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from style_pipeline.models.diffusion import load_pipeline
from style_pipeline.storage.store import Store
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.train_loop import TrainingOutcome, effective_mixed_precision
from style_pipeline.training.trainer import (
    list_versions,
    next_version,
    prune_versions,
    read_metadata,
    train_and_publish,
)
from style_pipeline_tests.training.conftest import PARTITION

TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


def _keys(path: Path) -> dict[str, tuple[int, ...]]:
    with safe_open(str(path), framework="pt") as fh:
        return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}


def _image(pipe) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        "sks style",
        num_inference_steps=1,
        height=64,
        width=64,
        generator=torch.Generator().manual_seed(0),
        output_type="np",
    )
    return out.images[0]


@pytest.fixture(scope="module")
def two_runs(tiny_model, tiny_dataset, tmp_path_factory):
    """The tiny preset (4 steps) trained twice from scratch into one store."""
    store = Store(tmp_path_factory.mktemp("lora_store"))
    progress = []
    first = train_and_publish(
        store, PARTITION, PRESETS["tiny"], tiny_dataset, tiny_model, progress=progress.append
    )
    second = train_and_publish(store, PARTITION, PRESETS["tiny"], tiny_dataset, tiny_model)
    return store, first, second, progress


@pytest.mark.slow
def test_saved_keys_are_diffusers_unet_lora(two_runs, tiny_model):
    store, first, _, _ = two_runs
    keys = _keys(store.local_path(first.weights_key))
    assert keys and all(k.startswith("unet.") for k in keys)
    assert all(".lora.down.weight" in k or ".lora.up.weight" in k for k in keys)
    for target in TARGETS:
        assert any(f".{target}.lora.down.weight" in k for k in keys), target
    downs = [shape for k, shape in keys.items() if k.endswith("lora.down.weight")]
    assert {shape[0] for shape in downs} == {PRESETS["tiny"].rank}
    linears = [
        name
        for name, module in load_pipeline(tiny_model.path).unet.named_modules()
        if isinstance(module, torch.nn.Linear) and name.endswith(TARGETS)
    ]
    assert len(downs) == len(linears)


@pytest.mark.slow
def test_weights_load_into_pipeline_and_change_output(two_runs, tiny_model, tmp_path):
    store, first, _, _ = two_runs
    folder = tmp_path / "lora"
    folder.mkdir()
    (folder / "pytorch_lora_weights.safetensors").write_bytes(store.read_bytes(first.weights_key))
    pipe = load_pipeline(tiny_model.path)
    before = _image(pipe)
    pipe.load_lora_weights(str(folder))
    assert pipe.get_active_adapters()
    after = _image(pipe)
    assert np.isfinite(after).all() and np.abs(after - before).max() > 0


@pytest.mark.slow
def test_two_runs_are_bit_identical(two_runs):
    store, first, second, _ = two_runs
    assert (first.version, second.version) == (f"{PARTITION}.001", f"{PARTITION}.002")
    assert first.metadata["sha256"] == second.metadata["sha256"]
    assert store.read_bytes(first.weights_key) == store.read_bytes(second.weights_key)
    assert first.metadata["losses"] == second.metadata["losses"]


@pytest.mark.slow
def test_metadata_and_progress(two_runs, tiny_dataset):
    store, first, _, progress = two_runs
    meta = read_metadata(store, first.version)
    manifest = json.loads((tiny_dataset / "manifest.json").read_text())
    assert meta["dataset_hash"] == manifest["dataset_hash"]
    assert meta["config_hash"] == PRESETS["tiny"].config_hash()
    assert (meta["seed"], meta["steps"], meta["model_profile"]) == (0, 4, "tiny")
    assert math.isfinite(meta["final_loss"]) and meta["final_loss"] == meta["losses"][-1]
    assert meta["estimate"]["total_steps"] == 4 and meta["lora_parameters"] > 0
    assert [p.step for p in progress] == [1, 2, 3, 4]
    assert progress[-1].eta_s == 0 and all(p.total_steps == 4 for p in progress)
    assert all(math.isfinite(p.loss) and p.lr > 0 for p in progress)


@pytest.mark.slow
def test_text_encoder_lora_accumulation_and_options(tiny_model, tiny_dataset, tmp_path):
    config = PRESETS["tiny"].model_copy(
        update={
            "train_text_encoder": True,
            "train_batch_size": 2,
            "gradient_accumulation_steps": 2,
            "max_train_steps": 1,
            "snr_gamma": 5.0,
            "center_crop": False,
            "random_flip": True,
            "lr_scheduler": "cosine",
            "lr_warmup_steps": 1,
            "mixed_precision": "fp16",
            "alpha": 2.0,
        }
    )
    store = Store(tmp_path / "store")
    published = train_and_publish(store, PARTITION, config, tiny_dataset, tiny_model)
    assert published.metadata["steps"] == 1
    assert published.metadata["mixed_precision"] == "no"
    assert any("ignored on CPU" in n for n in published.metadata["notes"])
    keys = _keys(store.local_path(published.weights_key))
    assert any(k.startswith("text_encoder.") for k in keys)
    assert any(k.startswith("unet.") for k in keys)
    folder = store.local_path(published.prefix)
    pipe = load_pipeline(tiny_model.path)
    pipe.load_lora_weights(str(folder))
    assert np.isfinite(_image(pipe)).all()


@pytest.mark.slow
def test_sdxl_unet_and_both_text_encoders(tiny_sdxl_model, tiny_dataset, tmp_path):
    config = PRESETS["tiny"].model_copy(
        update={"model_family": "sdxl", "train_text_encoder": True, "max_train_steps": 2}
    )
    store = Store(tmp_path / "store")
    published = train_and_publish(store, PARTITION, config, tiny_dataset, tiny_sdxl_model)
    assert published.metadata["family"] == "sdxl" and published.metadata["steps"] == 2
    prefixes = {k.split(".", 1)[0] for k in _keys(store.local_path(published.weights_key))}
    assert prefixes == {"unet", "text_encoder", "text_encoder_2"}
    pipe = load_pipeline(tiny_sdxl_model.path)
    pipe.load_lora_weights(str(store.local_path(published.prefix)))
    assert np.isfinite(_image(pipe)).all()


def test_family_mismatch_is_an_error(tiny_sdxl_model, tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match="model_family=sd"):
        train_and_publish(
            Store(tmp_path / "s"), PARTITION, PRESETS["tiny"], tiny_dataset, tiny_sdxl_model
        )


class _FileBackend:
    """A backend double: writes a small deterministic safetensors file instead of training."""

    name = "test-double"

    def train(self, request, progress=None):
        path = request.output_dir / "pytorch_lora_weights.safetensors"
        save_file({"unet.x.lora.down.weight": torch.ones(2, 2)}, str(path))
        return TrainingOutcome(path, 1, 1, 0.5, (0.5,), 0.0, "cpu", "no", "sd", 1, 4)


def test_keeps_the_last_three_versions(tiny_model, tiny_dataset, tmp_path):
    store = Store(tmp_path / "store")
    config = PRESETS["tiny"]
    published = [
        train_and_publish(store, day, config, tiny_dataset, tiny_model, backend=_FileBackend())
        for day in ("2026-01-01", "2026-01-02", "2026-01-02", "2026-01-03", "2026-01-04")
    ]
    assert [p.version for p in published][1:3] == ["2026-01-02.001", "2026-01-02.002"]
    assert list_versions(store) == ["2026-01-02.002", "2026-01-03.001", "2026-01-04.001"]
    assert published[-1].pruned == ("2026-01-02.001",)
    assert not store.exists("lora_weights/2026-01-01.001/metadata.json")
    assert published[-1].metadata["backend"] == "test-double"
    assert next_version(store, "2026-01-02") == "2026-01-02.003"
    assert prune_versions(store, keep=1) == ["2026-01-02.002", "2026-01-03.001"]
    with pytest.raises(ValueError):
        prune_versions(store, keep=0)


@pytest.mark.parametrize(
    ("requested", "device", "expected"),
    [("no", "cpu", "no"), ("fp16", "cpu", "no"), ("bf16", "cpu", "no"), ("fp16", "cuda", "fp16")],
)
def test_effective_mixed_precision(requested, device, expected):
    used, note = effective_mixed_precision(requested, torch.device(device))
    assert used == expected
    assert (note is None) == (used == requested)
