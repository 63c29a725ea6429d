"""What a remote training backend (ComfyUI, Replicate) implements, and what it reports.

``RemoteBackend`` is the API of one service: submit a dataset folder and a config, ask where
the job stands, cancel it, fetch its logs and download the weights. The job lifecycle
around it (the persisted ``TrainingJob``, resume, cancel on interrupt, estimates, the
``TrainingBackend`` adapter the trainer calls) is ``training.remote.jobs``; retries,
backoff and the circuit breaker are ``training.remote.http``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from style_pipeline.contracts.remote_training import JobStatus
from style_pipeline.contracts.training import LoraTrainingConfig


class RemoteTrainingError(RuntimeError):
    """A remote backend refused or failed a request; the message never holds a token."""


@dataclass(frozen=True)
class RemoteStatus:
    """Where a remote job stands, as the service reports it."""

    status: JobStatus
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    cost_usd: float | None = None
    error: str | None = None
    seconds: float | None = None  # run time as the service measured it
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    """``available()``: whether the service can take a job now, and what it has."""

    ok: bool
    detail: str
    vram_gb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RemoteBackend(Protocol):
    """One remote training service."""

    name: str

    def available(self) -> Availability: ...

    def submit(
        self, dataset_dir: Path, config: LoraTrainingConfig, job_id: str, progress_log: Any
    ) -> str:
        """Upload the dataset, start the training; the service's id of the job."""
        ...

    def status(self, remote_id: str) -> RemoteStatus: ...

    def cancel(self, remote_id: str) -> None: ...

    def logs(self, remote_id: str) -> list[str]: ...

    def download(self, remote_id: str, dest_dir: Path) -> Path:
        """The trained LoRA as a diffusers-format ``.safetensors`` in ``dest_dir``."""
        ...
