"""Training logs: the estimate before the first step, then step 1, every Nth and the last."""

from __future__ import annotations

import re

from style_pipeline.storage.store import Store
from style_pipeline.training.estimates import is_logged_step
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.trainer import train_and_publish
from style_pipeline_tests.training.conftest import PARTITION

# With N=2 over 5 steps every trainer logs steps 1, 2, 4 and 5 (the caption fine-tune's
# test in captioning/test_finetune.py expects the same list).
LOGGED_N2_OF_5 = [1, 2, 4, 5]


def logged_steps(lines: list[str]) -> list[int]:
    return [int(m.group(1)) for line in lines if (m := re.search(r"\bstep (\d+)/", line))]


def test_is_logged_step_first_every_nth_and_last():
    assert [s for s in range(1, 6) if is_logged_step(s, 5, 2)] == LOGGED_N2_OF_5
    assert [s for s in range(1, 201) if is_logged_step(s, 200, 25)] == [1, *range(25, 201, 25)]
    assert [s for s in range(1, 4) if is_logged_step(s, 3, 1)] == [1, 2, 3]


def test_lora_logs_the_estimate_before_training_then_every_nth_step(
    tiny_model, tiny_dataset, tmp_path
):
    lines: list[str] = []
    progress: list[int] = []

    def on_progress(p) -> None:
        if not progress:
            lines.append("<progress>")
        progress.append(p.step)

    config = PRESETS["tiny"].model_copy(update={"max_train_steps": 5})
    train_and_publish(
        Store(tmp_path / "storage"), PARTITION, config, tiny_dataset, tiny_model,
        progress=on_progress, log_line=lines.append, log_every_n_steps=2,
    )  # fmt: skip
    assert lines[0].startswith("training estimate: ")  # before the first optimisation step
    assert lines[1] == "<progress>"
    assert progress == [1, 2, 3, 4, 5]  # progress still sees every step
    assert logged_steps(lines[2:]) == LOGGED_N2_OF_5
