"""``training.backend`` -> the backend that trains: None for local, else a remote job backend.

The stage (``stages/lora_weights.py``) and the ``jobs`` CLI build backends here, from the
``training:`` section only. The service modules are imported on demand, so choosing
``local`` imports neither.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from style_pipeline.contracts.training import TrainingSettings
from style_pipeline.storage.store import Store
from style_pipeline.training.remote.base import RemoteBackend
from style_pipeline.training.remote.job_store import JobStore

if TYPE_CHECKING:  # jobs.py imports torch: not at this module's import (the jobs CLI)
    from style_pipeline.training.remote.jobs import RemoteTrainingBackend


def remote_backend(
    training: TrainingSettings, verify_pipeline: Path | None = None
) -> RemoteBackend:
    """The service ``training.backend`` names; ``verify_pipeline`` is the base pipeline the
    downloaded LoRA is loaded into (``load_lora_weights``) before it is accepted."""
    if training.backend == "comfyui":
        from style_pipeline.training.remote.comfyui import ComfyUIBackend

        return ComfyUIBackend(training.comfyui, training.remote, verify_pipeline=verify_pipeline)
    if training.backend == "replicate":
        from style_pipeline.training.remote.replicate import ReplicateBackend

        return ReplicateBackend(
            training.replicate, training.remote, verify_pipeline=verify_pipeline
        )
    raise ValueError(f"training.backend {training.backend!r} is not a remote backend")


def secret_envs(training: TrainingSettings) -> tuple[str, ...]:
    """The variables holding the configured backends' tokens (their values are redacted)."""
    names = (training.comfyui.token_env, training.replicate.token_env)
    return tuple(name for name in names if name)


def training_backend(
    training: TrainingSettings,
    store: Store,
    partition: str,
    model_path: Path,
    log_line: Callable[[str], None] | None = None,
    run_id: str | None = None,
) -> RemoteTrainingBackend | None:
    """None for ``training.backend: local``, else a ``RemoteTrainingBackend``."""
    if training.backend == "local":
        return None
    from style_pipeline.training.remote.jobs import RemoteTrainingBackend

    replicate = training.backend == "replicate"
    return RemoteTrainingBackend(
        remote_backend(training, verify_pipeline=Path(model_path)),
        JobStore(store),
        partition,
        training.remote,
        price_per_second_usd=training.replicate.price_per_second_usd if replicate else None,
        hardware=training.replicate.hardware if replicate else None,
        log_line=log_line,
        log_every_n_steps=training.log_every_n_steps,
        run_id=run_id,
        secret_envs=secret_envs(training),
    )
