"""EMA of the LoRA weights: the average's arithmetic, its effect on the published weights,
and a resume with EMA (and validation) that ends bit-identical to an uninterrupted run."""

from __future__ import annotations

import pytest
import torch

from style_pipeline.storage.store import Store
from style_pipeline.training.ema import LoraEma
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.trainer import train_and_publish
from style_pipeline_tests.training.conftest import PARTITION

EMA = PRESETS["tiny"].model_copy(update={"ema_decay": 0.9, "max_train_steps": 5})
# EMA, a held-out loss and validation images, checkpoints every 2 steps: all their state
# must survive a kill.
WATCHED = EMA.model_copy(
    update={
        "checkpoint_every_n_steps": 2,
        "validation_split": 0.25,
        "validation_every_n_steps": 2,
        "validation_prompts": ("a red cat",),
        "validation_inference_steps": 1,
    }
)


def test_ema_warms_up_then_uses_its_decay_and_applied_restores_the_live_weights():
    p = torch.nn.Parameter(torch.zeros(3))
    ema = LoraEma([p], decay=0.5)
    with torch.no_grad():
        p.fill_(1.0)
    ema.update()  # warm-up: min(0.5, 1/10) = 0.1 -> 0.1 * 0 + 0.9 * 1
    assert torch.allclose(ema.shadow[0], torch.full((3,), 0.9))
    ema.updates = 100
    ema.update()  # min(0.5, 101/110) = 0.5
    assert torch.allclose(ema.shadow[0], torch.full((3,), 0.95))
    with ema.applied():
        assert torch.equal(p.detach(), ema.shadow[0])
    assert torch.equal(p.detach(), torch.ones(3))
    saved, tensors = ema.state()
    other = LoraEma([p], decay=0.5)
    other.load_state(saved, tensors)
    assert other.updates == 101 and torch.equal(other.shadow[0], ema.shadow[0])
    with pytest.raises(ValueError):
        LoraEma([p], decay=1.0)


@pytest.mark.slow
def test_ema_changes_the_published_weights(tiny_model, tiny_dataset, tmp_path):
    plain = EMA.model_copy(update={"ema_decay": None})
    with_ema = train_and_publish(Store(tmp_path / "a"), PARTITION, EMA, tiny_dataset, tiny_model)
    without = train_and_publish(Store(tmp_path / "b"), PARTITION, plain, tiny_dataset, tiny_model)
    assert with_ema.metadata["ema"] is True and without.metadata["ema"] is False
    assert with_ema.metadata["losses"] == without.metadata["losses"]  # same training
    assert with_ema.metadata["sha256"] != without.metadata["sha256"]  # other weights saved


class Killed(Exception):
    pass


@pytest.mark.slow
def test_resume_with_ema_and_validation_is_bit_identical(tiny_model, tiny_dataset, tmp_path):
    straight = WATCHED.model_copy(update={"checkpoint_every_n_steps": 0})
    reference_store = Store(tmp_path / "straight")
    reference = train_and_publish(
        reference_store, PARTITION, straight, tiny_dataset, tiny_model
    ).metadata

    def kill_at_3(p) -> None:
        if p.step == 3:
            raise Killed

    store = Store(tmp_path / "resumed")
    with pytest.raises(Killed):
        train_and_publish(store, PARTITION, WATCHED, tiny_dataset, tiny_model, progress=kill_at_3)
    resumed = train_and_publish(store, PARTITION, WATCHED, tiny_dataset, tiny_model).metadata
    assert resumed["resumed_from_step"] == 2
    assert resumed["sha256"] == reference["sha256"]
    assert resumed["validation_losses"] == reference["validation_losses"]
    # the grid still has the column of step 2, rendered before the kill
    assert list(resumed["validation_steps"]) == [2, 4, 5]
    grid = store.read_bytes(resumed["pictures"]["validation_grid"])
    assert grid == reference_store.read_bytes(reference["pictures"]["validation_grid"])
