"""Latent and text caches of LoRA training: reuse across runs, same losses, bypasses, repair."""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load as load_safetensors

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.estimates import estimate_resources
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.tensor_cache import TensorCache, module_hash
from style_pipeline.training.trainer import train_and_publish
from style_pipeline_tests.training.conftest import PARTITION

# Batches of two, both flips: two images share the square bucket, so batches really stack.
FLIPPING = PRESETS["tiny"].model_copy(
    update={"random_flip": True, "train_batch_size": 2, "max_train_steps": 4}
)


def _entries(store: Store, kind: str) -> list[str]:
    root = store.local_path(f"{layout.TRAINING_CACHE}/{kind}")
    return sorted(p.name for p in root.rglob("*.safetensors")) if root.exists() else []


def _train(store, config, tiny_dataset, tiny_model):
    return train_and_publish(store, PARTITION, config, tiny_dataset, tiny_model).metadata


@pytest.fixture(scope="module")
def cold_and_warm(tiny_model, tiny_dataset, tmp_path_factory):
    """Two trainings on the same images into one store: the first fills the caches."""
    store = Store(tmp_path_factory.mktemp("cache_store"))
    first = _train(store, FLIPPING, tiny_dataset, tiny_model)
    second = _train(store, FLIPPING, tiny_dataset, tiny_model)
    return store, first, second


@pytest.mark.slow
def test_second_training_encodes_nothing(cold_and_warm):
    store, first, second = cold_and_warm
    # 4 images x 2 flips, 4 distinct captions
    assert (first["cache"]["latents"]["hits"], first["cache"]["latents"]["misses"]) == (0, 8)
    assert (second["cache"]["latents"]["hits"], second["cache"]["latents"]["misses"]) == (8, 0)
    assert (first["cache"]["text"]["hits"], first["cache"]["text"]["misses"]) == (0, 4)
    assert (second["cache"]["text"]["hits"], second["cache"]["text"]["misses"]) == (4, 0)
    assert len(_entries(store, "latents")) == 8 and len(_entries(store, "text")) == 4


@pytest.mark.slow
def test_warm_run_is_bit_identical_to_cold_run(cold_and_warm):
    _, first, second = cold_and_warm
    assert first["sha256"] == second["sha256"]
    assert first["losses"] == second["losses"]
    assert first["determinism"].startswith("cpu: seeded generators, deterministic")


@pytest.mark.slow
def test_cached_and_uncached_loss_curves_match(cold_and_warm, tiny_model, tiny_dataset, tmp_path):
    _, cached, _ = cold_and_warm
    uncached_config = FLIPPING.model_copy(
        update={"cache_latents": False, "cache_text_embeddings": False}
    )
    store = Store(tmp_path / "store")
    uncached = _train(store, uncached_config, tiny_dataset, tiny_model)
    assert not uncached["cache"]["latents"]["used"] and not uncached["cache"]["text"]["used"]
    assert _entries(store, "latents") == [] and _entries(store, "text") == []
    assert len(uncached["losses"]) == len(cached["losses"]) == 4
    for a, b in zip(uncached["losses"], cached["losses"], strict=True):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (a, b)


@pytest.mark.slow
def test_decode_workers_give_the_same_batches(tiny_model, tiny_dataset, tmp_path):
    """Pixels decoded in a DataLoader worker process train exactly like inline decoding."""
    config = FLIPPING.model_copy(update={"cache_latents": False, "max_train_steps": 2})
    inline = _train(Store(tmp_path / "a"), config, tiny_dataset, tiny_model)
    workers = config.model_copy(update={"dataloader_workers": 1})
    forked = _train(Store(tmp_path / "b"), workers, tiny_dataset, tiny_model)
    assert forked["cache"]["dataloader_workers"] == 1
    assert forked["losses"] == inline["losses"] and forked["sha256"] == inline["sha256"]


@pytest.mark.slow
def test_text_cache_bypassed_with_text_encoder_lora(tiny_model, tiny_dataset, tmp_path):
    config = PRESETS["tiny"].model_copy(update={"train_text_encoder": True, "max_train_steps": 2})
    store = Store(tmp_path / "store")
    meta = _train(store, config, tiny_dataset, tiny_model)
    assert meta["cache"]["text"] == {
        "used": False,
        "reason": "train_text_encoder: the text encoders change every step",
    }
    assert meta["cache"]["latents"]["used"] and _entries(store, "text") == []


@pytest.mark.slow
def test_random_crops_bypass_the_latent_cache(tiny_model, tiny_dataset, tmp_path):
    config = PRESETS["tiny"].model_copy(update={"center_crop": False, "max_train_steps": 2})
    store = Store(tmp_path / "store")
    meta = _train(store, config, tiny_dataset, tiny_model)
    assert (
        not meta["cache"]["latents"]["used"]
        and "random crops" in meta["cache"]["latents"]["reason"]
    )
    assert _entries(store, "latents") == [] and meta["cache"]["text"]["misses"] == 4


@pytest.mark.slow
def test_corrupt_entries_are_misses_and_rewritten(tiny_model, tiny_dataset, tmp_path):
    config = PRESETS["tiny"].model_copy(update={"max_train_steps": 2})
    store = Store(tmp_path / "store")
    first = _train(store, config, tiny_dataset, tiny_model)
    root = store.local_path(layout.TRAINING_CACHE)
    latent = sorted((root / "latents").rglob("*.safetensors"))[0]
    text = sorted((root / "text").rglob("*.safetensors"))[0]
    latent.write_bytes(latent.read_bytes()[:40])  # torn write
    text.write_bytes(b"not a safetensors file at all")
    second = _train(store, config, tiny_dataset, tiny_model)
    for kind, path in (("latents", latent), ("text", text)):
        facts = second["cache"][kind]
        assert (facts["hits"], facts["misses"]) == (3, 1), kind
        assert [k.rsplit("/", 1)[-1] for k in facts["unreadable"]] == [path.name]
        assert load_safetensors(path.read_bytes())  # rewritten whole
    assert second["sha256"] == first["sha256"]


def test_cache_entry_with_wrong_shape_is_a_miss(tmp_path):
    cache = TensorCache(Store(tmp_path), "latents", "ab" * 32)
    entry = "cd" * 32
    cache.put_many([(entry, {"moments": torch.zeros(8, 4, 4)})])
    assert cache.get(entry, {"moments": ((8, 4, 4), None)}) is not None
    assert cache.get(entry, {"moments": ((8, 8, 4), None)}) is None
    assert cache.get(entry, {"other": ((8, 4, 4), None)}) is None
    cache.put_many([(entry, {"moments": torch.full((8, 4, 4), float("nan"))})])
    assert cache.get(entry, {"moments": ((8, 4, 4), None)}) is None
    assert len(cache.stats.unreadable) == 3


def test_module_hash_follows_weights_and_facts():
    torch.manual_seed(0)
    a, b = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    assert module_hash([a]) == module_hash([a])
    assert module_hash([a]) != module_hash([b])
    assert module_hash([a], dtype="fp32") != module_hash([a], dtype="bf16")
    assert module_hash([a], ("bias",)) != module_hash([a])


@pytest.mark.parametrize(
    ("kind", "model_hash", "ok"),
    [("latents", "0" * 16, True), ("text", "a" * 64, True), ("pixels", "0" * 16, False),
     ("latents", "XYZ", False), ("latents", "../" * 8, False)],
)  # fmt: skip
def test_training_cache_keys(kind, model_hash, ok):
    if not ok:
        with pytest.raises(ValueError):
            layout.training_cache_dir(kind, model_hash)
        return
    folder = layout.training_cache_dir(kind, model_hash)
    assert folder == f"training_dataset/cache/{kind}/{model_hash}"
    key = layout.training_cache_key(folder, "ab" + "0" * 62)
    assert key == f"{folder}/ab/ab{'0' * 62}.safetensors"
    assert layout.partition_of(key, layout.TRAINING_DATASET) is None
    with pytest.raises(ValueError):
        layout.training_cache_key(folder, "not-a-digest")


@pytest.mark.slow
def test_sdxl_cached_text_and_latents_match_uncached(tiny_sdxl_model, tiny_dataset, tmp_path):
    """Both text encoders' states and the pooled embedding come from the cache."""
    config = FLIPPING.model_copy(update={"model_family": "sdxl", "max_train_steps": 2})
    cached = _train(Store(tmp_path / "a"), config, tiny_dataset, tiny_sdxl_model)
    assert cached["cache"]["text"]["misses"] == 4 and cached["cache"]["latents"]["misses"] == 8
    off = config.model_copy(update={"cache_latents": False, "cache_text_embeddings": False})
    uncached = _train(Store(tmp_path / "b"), off, tiny_dataset, tiny_sdxl_model)
    for a, b in zip(uncached["losses"], cached["losses"], strict=True):
        assert math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6), (a, b)


@pytest.mark.parametrize("device", ["cpu", "cuda"])
def test_estimates_take_the_caches_out_of_the_steps(device, tmp_path):
    sd15 = PRESETS["sd15"]
    cached = estimate_resources(sd15, tmp_path, n_images=100, device=device)
    off = sd15.model_copy(update={"cache_latents": False, "cache_text_embeddings": False})
    uncached = estimate_resources(off, tmp_path, n_images=100, device=device)
    assert cached.cached == ("latents", "text") and uncached.cached == ()
    assert cached.step_seconds < uncached.step_seconds
    assert cached.cache_fill_seconds > 0 == uncached.cache_fill_seconds
    random_crops = sd15.model_copy(update={"center_crop": False, "train_text_encoder": True})
    assert estimate_resources(random_crops, tmp_path, 100, device).cached == ()
    flips = estimate_resources(sd15.model_copy(update={"random_flip": True}), tmp_path, 100, device)
    assert flips.cache_fill_seconds > cached.cache_fill_seconds
