"""Early stop: a rising validation loss ends the run and the best validation's weights are
the ones published."""

from __future__ import annotations

import pytest

from style_pipeline.storage.store import Store
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.trainer import train_and_publish
from style_pipeline.training.validation import EarlyStop
from style_pipeline_tests.training.conftest import PARTITION

# A learning rate far too high for the tiny model: the held-out loss rises after step 2.
DIVERGING = PRESETS["tiny"].model_copy(
    update={
        "learning_rate": 0.5,
        "max_train_steps": 8,
        "validation_split": 0.25,
        "validation_every_n_steps": 1,
        "early_stop_patience": 1,
    }
)


@pytest.mark.parametrize(
    ("losses", "patience", "min_delta", "stops_after", "best_step"),
    [
        ([3.0, 2.0, 2.5], 1, 0.0, 3, 2),
        ([3.0, 2.0, 2.5, 1.0], 2, 0.0, None, 4),  # recovered before patience ran out
        ([3.0, 2.0, 2.5, 2.6], 2, 0.0, 4, 2),
        ([3.0, 2.95, 2.9], 1, 0.1, 2, 1),  # improvements under min_delta do not count
        ([3.0, 4.0, 5.0], 0, 0.0, None, 1),  # patience 0: never stops
    ],
)
def test_early_stop_counts_validations_without_improvement(
    losses, patience, min_delta, stops_after, best_step
):
    early = EarlyStop(patience, min_delta)
    stopped_at = None
    for step, loss in enumerate(losses, start=1):
        early.observe(step, loss)
        if early.stop and stopped_at is None:
            stopped_at = step
    assert stopped_at == stops_after
    assert early.best_step == best_step
    assert early.best_loss == losses[best_step - 1]


@pytest.mark.slow
def test_a_rising_validation_loss_stops_the_run_and_publishes_the_best_step(
    tiny_model, tiny_dataset, tmp_path
):
    stopped = train_and_publish(
        Store(tmp_path / "a"), PARTITION, DIVERGING, tiny_dataset, tiny_model
    ).metadata
    assert stopped["early_stopped"] is True
    best = stopped["best_step"]
    losses = dict(stopped["validation_losses"])
    assert stopped["steps"] < DIVERGING.max_train_steps and stopped["steps"] == max(losses)
    assert losses[best] == min(losses.values()) == stopped["best_validation_loss"]
    assert losses[stopped["steps"]] > losses[best]  # it rose: that is why it stopped
    assert any(f"published the weights of step {best}" in n for n in stopped["notes"])
    # The same training cut at the best step (constant LR, same split, no early stop)
    # gives exactly the published weights.
    cut = DIVERGING.model_copy(update={"max_train_steps": best, "early_stop_patience": 0})
    reference = train_and_publish(
        Store(tmp_path / "b"), PARTITION, cut, tiny_dataset, tiny_model
    ).metadata
    assert reference["early_stopped"] is False
    assert reference["sha256"] == stopped["sha256"]
    assert reference["losses"] == stopped["losses"][:best]
