"""The trainer's side of Dagster Pipes: ``python -m style_pipeline.stages.lora_weights_pipes``.

``lora_weights`` starts this module in a child process, a container or a pod (the
``training.launcher`` settings) and passes, as Pipes extras, the partition, the storage
root and the ``training:`` settings section, so the trainer reads no config file of its
own. It then trains exactly as the in-process path does (:func:`train_lora`) and reports:

- the estimate, step 1, every ``log_every_n_steps``-th, every validating and the last
  step as log lines;
- each of those steps as a custom message ``{"kind": "progress", step, total_steps, loss,
  eta_s, elapsed_s}`` (plus ``validation_loss`` on the steps that validated);
- the published :class:`LoraWeightsDocument` as a custom message ``{"kind": "document"}``
  (validation losses, best step, early stop, the store keys of the loss curve and the
  validation grid) and its facts as the asset materialization's metadata.

SIGTERM (what Docker and Kubernetes send on a stop) is turned into the same
``KeyboardInterrupt`` as the SIGINT that ``PipesSubprocessClient`` forwards when the run is
cancelled: training stops between two operations and nothing is published.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from style_pipeline.contracts.training import TrainingSettings

if TYPE_CHECKING:
    from style_pipeline.training.train_loop import TrainingProgress

# Light at import (the code location imports MODULE through defs/training/launch.py); the
# trainer's libraries load in run().

MODULE = "style_pipeline.stages.lora_weights_pipes"


def extras_for(partition: str, storage_root: str, settings: TrainingSettings) -> dict[str, Any]:
    """The Pipes extras the trainer needs (JSON-safe)."""
    return {
        "partition": partition,
        "storage_root": storage_root,
        "training": settings.model_dump(mode="json"),
    }


def progress_message(p: TrainingProgress) -> dict[str, Any]:
    message = {
        "kind": "progress",
        "step": p.step,
        "total_steps": p.total_steps,
        "loss": p.loss,
        "eta_s": round(p.eta_s, 1),
        "elapsed_s": round(p.elapsed_s, 1),
    }
    if p.validation_loss is not None:
        message["validation_loss"] = p.validation_loss
    return message


def _interrupt_on_sigterm() -> None:
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def run(pipes: Any, extras: Mapping[str, Any]) -> None:
    """Train and report through ``pipes`` (a ``PipesContext``)."""
    from style_pipeline.paths import resolve_root
    from style_pipeline.stages.lora_weights import train_lora
    from style_pipeline.storage.store import Store
    from style_pipeline.training.estimates import is_logged_step

    settings = TrainingSettings.model_validate(extras["training"])
    store = Store(resolve_root(str(extras["storage_root"])))
    every = settings.log_every_n_steps

    def progress(p: TrainingProgress) -> None:
        if is_logged_step(p.step, p.total_steps, every) or p.validation_loss is not None:
            pipes.report_custom_message(progress_message(p))

    document, facts = train_lora(
        store, str(extras["partition"]), settings, progress, log=pipes.log.info,
        run_id=getattr(pipes, "run_id", None),
    )  # fmt: skip
    pipes.report_custom_message({"kind": "document", "document": document.model_dump(mode="json")})
    pipes.report_asset_materialization(
        metadata={k: v for k, v in facts.items() if not isinstance(v, dict)}
    )


def main() -> int:
    from dagster_pipes import open_dagster_pipes

    _interrupt_on_sigterm()
    with open_dagster_pipes() as pipes:
        try:
            run(pipes, pipes.extras)
        except KeyboardInterrupt:
            pipes.log.warning("trainer interrupted (run cancelled): nothing published")
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
