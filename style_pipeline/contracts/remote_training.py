"""Remote training contracts: a training job's record and the settings of the ComfyUI and
Replicate backends and of talking to them (timeouts, retries, circuit breaker).

A job is one LoRA training sent to a backend for (backend, config hash, dataset hash): its
record (``training_jobs/<job_id>.json`` in the Store) is rewritten on every transition, so
a crashed or re-run ``lora_weights`` finds a job still running and polls it instead of
starting another.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JobStatus = Literal["queued", "uploading", "running", "completed", "failed", "cancelled"]
FINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})
BackendName = Literal["local", "comfyui", "replicate"]


def job_id_for(backend: str, config_hash: str, dataset_hash: str) -> str:
    """The job's id: the same backend, config and dataset always give the same id."""
    digest = hashlib.sha256(f"{backend}\n{config_hash}\n{dataset_hash}".encode()).hexdigest()
    return f"{backend}-{digest[:16]}"


class TrainingJob(BaseModel):
    """``training_jobs/<job_id>.json``: one remote training and where it stands."""

    model_config = ConfigDict(extra="forbid")

    job_id: str
    backend: str
    remote_id: str | None = Field(None, description="the backend's id (prompt id, training id)")
    partition: str
    config_hash: str
    dataset_hash: str
    status: JobStatus = "queued"
    step: int = 0
    total_steps: int | None = None
    loss: float | None = None
    eta_s: float | None = None
    cost_usd: float | None = Field(None, description="so far; the final cost once completed")
    estimate: dict[str, Any] = Field(
        default_factory=dict, description="before submit: vram_gb, seconds, cost_usd, basis"
    )
    actual: dict[str, Any] = Field(
        default_factory=dict, description="after: seconds, cost_usd (kept to recalibrate)"
    )
    created_at: dt.datetime
    updated_at: dt.datetime
    submitted_at: dt.datetime | None = Field(
        None, description="when the backend accepted it (job_timeout_s counts from here)"
    )
    started_at: dt.datetime | None = Field(None, description="when it was first seen running")
    finished_at: dt.datetime | None = None
    error: str | None = Field(None, description="why it failed (never a token)")
    weights_sha256: str | None = None
    run_id: str | None = Field(None, description="the Dagster run that submitted or resumed it")
    attempts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="earlier submissions under this id (a failed, cancelled or lost job is "
        "submitted again by the next run): remote_id, status, error, submitted_at, finished_at",
    )

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES


class RemoteCallSettings(BaseModel):
    """``training.remote``: how every remote backend is called."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(30.0, gt=0, description="one HTTP request")
    max_attempts: int = Field(5, ge=1, description="per request, on 429, 5xx and timeouts")
    backoff_base_s: float = Field(1.0, gt=0, description="first retry delay (doubles, jitter)")
    backoff_max_s: float = Field(60.0, gt=0)
    poll_interval_s: float = Field(10.0, gt=0, description="between status polls")
    job_timeout_s: float = Field(
        12 * 3600.0, gt=0, description="a job running longer is cancelled and failed"
    )
    breaker_failures: int = Field(
        5, ge=1, description="consecutive failed requests that open a backend's circuit"
    )
    breaker_reset_s: float = Field(300.0, gt=0, description="an open circuit's cool-down")


class ComfyUISettings(BaseModel):
    """``training.comfyui``: a ComfyUI server with a LoRA-training node pack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(None, description="e.g. http://gpu-box:8188")
    token_env: str | None = Field(
        None, description="variable holding a bearer token, for a ComfyUI behind a proxy"
    )
    upload: Literal["per_image", "zip"] = "per_image"
    websocket: bool = Field(True, description="follow progress on /ws; else poll /history")
    output_subfolder: str = Field(
        "style_pipeline",
        description="subfolder of ComfyUI's input (datasets) and output (weights) folders",
    )
    checkpoint: str | None = Field(
        None,
        description="the base model's file in the server's models/checkpoints (ckpt_name), "
        "e.g. v1-5-pruned-emaonly.safetensors",
    )
    server_input_dir: str = Field(
        "input",
        description="ComfyUI's input folder as the training process on the server sees it "
        "(relative to ComfyUI's working directory, or absolute): /upload/image writes there",
    )
    server_output_dir: str = Field(
        "output",
        description="ComfyUI's output folder as the server sees it: the node saves the LoRA "
        "in <server_output_dir>/<output_subfolder>, /view?type=output serves it",
    )


class ReplicateSettings(BaseModel):
    """``training.replicate``: trainings on Replicate."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_url: str = "https://api.replicate.com/v1"
    token_env: str = Field("REPLICATE_API_TOKEN", description="variable holding the API token")
    trainer: str | None = Field(None, description="owner/model of the trainer")
    version: str | None = Field(None, description="the trainer's version id")
    destination: str | None = Field(None, description="owner/model the trained weights go to")
    hardware: str = Field("gpu-a100-large", description="what the price below is for")
    price_per_second_usd: float = Field(
        0.0014, ge=0, description="the hardware's price, for cost estimates and accounting"
    )
    extra_input: dict[str, Any] = Field(
        default_factory=dict, description="trainer inputs added to those mapped from the config"
    )
