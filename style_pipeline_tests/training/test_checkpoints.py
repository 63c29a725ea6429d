"""Resumable training checkpoints: a run killed at step k and re-run ends bit-identical."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load as load_safetensors

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.checkpoints import INDEX_NAME, STATE_NAME, dataset_hash_in, run_dir
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.trainer import train_and_publish
from style_pipeline_tests.training.conftest import PARTITION
from style_pipeline_tests.training.factories import Killed, kill_at

# Two epochs and a bit (4 images, batches of two in per-aspect buckets), flips drawn from
# the data generator, a schedule whose LR changes every step: every piece of state matters.
CONFIG = PRESETS["tiny"].model_copy(
    update={
        "random_flip": True,
        "train_batch_size": 2,
        "max_train_steps": 6,
        "lr_scheduler": "cosine",
        "lr_warmup_steps": 2,
        "checkpoint_every_n_steps": 2,
    }
)
# The pixel path (no latent cache) with random crops: crop offsets come from the data RNG.
PIXELS = CONFIG.model_copy(
    update={"cache_latents": False, "center_crop": False, "gradient_accumulation_steps": 2}
)


def _checkpoint_files(store: Store, config, tiny_dataset) -> list[str]:
    data_hash = dataset_hash_in(tiny_dataset)
    assert data_hash is not None
    root = store.local_path(layout.TRAINING_CHECKPOINTS)
    prefix = store.local_path(run_dir(config, data_hash))
    assert prefix.parent == root
    return sorted(p.relative_to(prefix).as_posix() for p in prefix.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def uninterrupted(tiny_model, tiny_dataset, tmp_path_factory):
    """Both configs trained in one go, without checkpoints (the reference weights)."""
    out = {}
    for name, config in (("latents", CONFIG), ("pixels", PIXELS)):
        store = Store(tmp_path_factory.mktemp(f"straight_{name}"))
        plain = config.model_copy(update={"checkpoint_every_n_steps": 0})
        out[name] = train_and_publish(store, PARTITION, plain, tiny_dataset, tiny_model).metadata
    return out


@pytest.mark.slow
def test_resume_after_a_kill_gives_the_uninterrupted_weights(
    uninterrupted, tiny_model, tiny_dataset, tmp_path, capsys
):
    store = Store(tmp_path / "store")
    with pytest.raises(Killed):
        train_and_publish(store, PARTITION, CONFIG, tiny_dataset, tiny_model, progress=kill_at(4))
    # the checkpoint of step 4 was written before the kill; the one of step 2 was replaced
    files = _checkpoint_files(store, CONFIG, tiny_dataset)
    assert files == [f"step_00000004/{INDEX_NAME}", f"step_00000004/{STATE_NAME}"]
    resumed = train_and_publish(store, PARTITION, CONFIG, tiny_dataset, tiny_model).metadata
    reference = uninterrupted["latents"]
    shas = f"uninterrupted {reference['sha256']}, resumed {resumed['sha256']}"
    with capsys.disabled():
        print(f"\nsha256 {shas}")
    assert resumed["resumed_from_step"] == 4
    assert reference["resumed_from_step"] is None
    assert resumed["sha256"] == reference["sha256"]
    assert resumed["losses"] == reference["losses"] and len(resumed["losses"]) == 6
    assert any("resumed from the checkpoint at step 4/6" in n for n in resumed["notes"])
    assert resumed["config_hash"] == reference["config_hash"]  # checkpoint fields not hashed
    # published: the run's checkpoints are gone (keep_checkpoints: 0)
    assert not store.path(layout.TRAINING_CHECKPOINTS).exists() or not any(
        store.local_path(layout.TRAINING_CHECKPOINTS).iterdir()
    )


@pytest.mark.slow
def test_resume_mid_epoch_on_the_pixel_path_with_accumulation(
    uninterrupted, tiny_model, tiny_dataset, tmp_path
):
    """Killed at step 3 (after the checkpoint of step 2): step 3 is trained again."""
    store = Store(tmp_path / "store")
    with pytest.raises(Killed):
        train_and_publish(store, PARTITION, PIXELS, tiny_dataset, tiny_model, progress=kill_at(3))
    resumed = train_and_publish(store, PARTITION, PIXELS, tiny_dataset, tiny_model).metadata
    assert resumed["resumed_from_step"] == 2
    assert resumed["sha256"] == uninterrupted["pixels"]["sha256"]
    assert resumed["losses"] == uninterrupted["pixels"]["losses"]


@pytest.mark.slow
def test_a_changed_config_does_not_resume(uninterrupted, tiny_model, tiny_dataset, tmp_path):
    store = Store(tmp_path / "store")
    with pytest.raises(Killed):
        train_and_publish(store, PARTITION, CONFIG, tiny_dataset, tiny_model, progress=kill_at(4))
    changed = CONFIG.model_copy(update={"learning_rate": 2e-3})
    other = train_and_publish(store, PARTITION, changed, tiny_dataset, tiny_model).metadata
    assert other["resumed_from_step"] is None and len(other["losses"]) == 6
    # the killed run's checkpoint is left alone for its own re-run
    assert _checkpoint_files(store, CONFIG, tiny_dataset)[0].startswith("step_00000004/")


@pytest.mark.slow
def test_checkpoints_hold_no_pickle_and_a_foreign_identity_is_not_resumed(
    tiny_model, tiny_dataset, tmp_path
):
    store = Store(tmp_path / "store")
    with pytest.raises(Killed):
        train_and_publish(store, PARTITION, CONFIG, tiny_dataset, tiny_model, progress=kill_at(4))
    data_hash = dataset_hash_in(tiny_dataset)
    assert data_hash is not None
    folder = layout.training_checkpoint_dir(run_dir(CONFIG, data_hash), 4)
    state = store.read_bytes(f"{folder}/{STATE_NAME}")
    index_bytes = store.read_bytes(f"{folder}/{INDEX_NAME}")
    for blob in (state, index_bytes):
        assert not blob.startswith(b"\x80") and not blob.startswith(b"PK")  # pickle / torch zip
    tensors = load_safetensors(state)
    assert any(k.startswith("param/unet.") for k in tensors)
    assert any(k.startswith("optim/") for k in tensors)
    assert {"rng/torch_cpu", "rng/noise", "rng/data_epoch_start"} <= set(tensors)
    index = json.loads(index_bytes)
    assert (index["step"], index["identity"]["dataset_hash"]) == (4, data_hash)
    # a checkpoint of another model (or device) in the same folder is never resumed
    index["identity"]["pipeline"] = "SomethingElse"
    store.put_bytes(json.dumps(index).encode(), f"{folder}/{INDEX_NAME}")
    fresh = train_and_publish(store, PARTITION, CONFIG, tiny_dataset, tiny_model).metadata
    assert fresh["resumed_from_step"] is None


@pytest.mark.slow
def test_an_incomplete_or_damaged_newer_checkpoint_falls_back_to_the_last_good_one(
    uninterrupted, tiny_model, tiny_dataset, tmp_path
):
    """A kill while writing leaves tensors without an index, or tensors that do not match
    it: the newest complete checkpoint is resumed instead."""
    store = Store(tmp_path / "store")
    with pytest.raises(Killed):
        train_and_publish(store, PARTITION, CONFIG, tiny_dataset, tiny_model, progress=kill_at(4))
    data_hash = dataset_hash_in(tiny_dataset)
    assert data_hash is not None
    prefix = run_dir(CONFIG, data_hash)
    good = layout.training_checkpoint_dir(prefix, 4)
    state = store.read_bytes(f"{good}/{STATE_NAME}")
    index = store.read_bytes(f"{good}/{INDEX_NAME}")
    damaged = layout.training_checkpoint_dir(prefix, 5)  # index present, tensors changed
    store.put_bytes(state[:-4] + b"\0\0\0\0", f"{damaged}/{STATE_NAME}")
    store.put_bytes(index, f"{damaged}/{INDEX_NAME}")
    unfinished = layout.training_checkpoint_dir(prefix, 6)  # killed before the index
    store.put_bytes(state, f"{unfinished}/{STATE_NAME}")
    resumed = train_and_publish(store, PARTITION, CONFIG, tiny_dataset, tiny_model).metadata
    assert resumed["resumed_from_step"] == 4
    assert resumed["sha256"] == uninterrupted["latents"]["sha256"]
