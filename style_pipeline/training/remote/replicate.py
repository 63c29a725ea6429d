"""The Replicate backend: a LoRA trained by a Replicate trainer through its HTTP API v1.

Routes (``training.replicate.api_url``, Replicate's v1 API by default; every call
sends ``Authorization: Bearer <token>``, the token read from ``token_env``):

- ``GET /account``: the token works (``available``);
- ``GET /models/{owner}/{name}``: ``latest_version.id`` when no ``version`` is configured;
- ``POST /files`` (multipart ``content``): the dataset zip; answer ``{id, urls: {get},
  checksums: {sha256}}`` (the sha256 is checked against ours);
- ``POST /models/{owner}/{name}/versions/{version}/trainings`` ``{destination, input}``;
- ``GET /trainings/{id}``: ``status`` starting|processing|succeeded|failed|canceled, ``logs``
  (the trainer's stdout: tqdm bars give step, total and ETA), ``metrics.predict_time``,
  ``output.weights`` (a URL) and ``error``;
- ``POST /trainings/{id}/cancel``.

The weights URL (a ``.tar`` or a ``.safetensors``, on a CDN host: fetched without the
token) becomes a diffusers-format LoRA (:mod:`.lora_files`), checked with
``load_lora_weights`` when a pipeline folder is given. Cost is ``predict_time`` (or the
time since ``started_at`` while it runs) times ``price_per_second_usd``. Inputs:
:mod:`.replicate_inputs`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from style_pipeline.contracts.remote_training import (
    JobStatus,
    RemoteCallSettings,
    ReplicateSettings,
)
from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.training.remote.base import Availability, RemoteStatus, RemoteTrainingError
from style_pipeline.training.remote.http import RemoteHttp, RemoteRefused
from style_pipeline.training.remote.lora_files import verify_loads, write_diffusers_lora
from style_pipeline.training.remote.replicate_inputs import (
    DEFAULT_TRAINER,
    build_dataset_zip,
    trainer_input,
)

WEIGHT_NAME = "pytorch_lora_weights.safetensors"  # what the local trainer writes
STATUSES: dict[str, JobStatus] = {
    "starting": "queued",  # booting the trainer's machine
    "processing": "running",
    "succeeded": "completed",
    "failed": "failed",
    "canceled": "cancelled",
}
# GPU memory of Replicate's hardware names (replicate.com/pricing), for `available`.
HARDWARE_VRAM_GB = {
    "gpu-t4": 16.0,
    "gpu-l40s": 48.0,
    "gpu-l40s-2x": 96.0,
    "gpu-a40-large": 48.0,
    "gpu-a100-large": 80.0,
    "gpu-a100-large-2x": 160.0,
    "gpu-h100": 80.0,
}
# tqdm: " 12%|█▏  | 120/1000 [00:30<03:40,  4.00it/s]" (cog-sdxl logs one per step)
_TQDM = re.compile(r"(\d+)/(\d+) \[(?:\d+:)?\d+:\d+<((?:\d+:)?\d+:\d+|\?)")
_STEP = re.compile(r"\bstep[:=]?\s*(\d+)(?:\s*/\s*(\d+))?", re.IGNORECASE)
_LOSS = re.compile(r"\bloss[:=]\s*([-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)", re.IGNORECASE)
ERROR_CHARS = 500


def _clock_seconds(text: str) -> float | None:
    if text == "?":
        return None
    seconds = 0.0
    for part in text.split(":"):
        seconds = seconds * 60 + int(part)
    return seconds


def parse_progress(logs: str) -> tuple[int, int | None, float | None, float | None]:
    """(step, total, eta_s, loss) from a trainer's logs: the last tqdm bar wins, else the
    last ``step N[/M]``; the last ``loss: x``."""
    step, total, eta, loss = 0, None, None, None
    lines = re.split(r"[\r\n]+", logs)
    for line in reversed(lines):
        bar = _TQDM.search(line)
        if bar:
            step, total, eta = int(bar[1]), int(bar[2]), _clock_seconds(bar[3])
            break
        found = _STEP.search(line)
        if found:
            step, total = int(found[1]), int(found[2]) if found[2] else None
            break
    for line in reversed(lines):
        found = _LOSS.search(line)
        if found:
            loss = float(found[1])
            break
    return step, total, eta, loss


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _owner_name(trainer: str) -> tuple[str, str]:
    owner, _, name = trainer.partition("/")
    if not owner or not name or "/" in name:
        raise RemoteTrainingError(f"training.replicate.trainer must be owner/name, got {trainer!r}")
    return owner, name


class ReplicateBackend:
    """``RemoteBackend`` over Replicate's trainings API (see the module docstring)."""

    name = "replicate"

    def __init__(
        self,
        settings: ReplicateSettings,
        call: RemoteCallSettings,
        *,
        verify_pipeline: Path | None = None,
        http: RemoteHttp | None = None,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.settings, self.call = settings, call
        self.trainer = settings.trainer or DEFAULT_TRAINER
        self.verify_pipeline = verify_pipeline
        self._token = os.environ.get(settings.token_env) or None
        self._http = http
        self._now = now

    @property
    def http(self) -> RemoteHttp:
        if self._http is None:
            if not self._token:
                raise RemoteTrainingError(
                    f"environment variable {self.settings.token_env} "
                    "(training.replicate.token_env) is not set: Replicate needs an API token"
                )
            self._http = RemoteHttp(
                self.settings.api_url, self.call, self.name, self._token,
                token_env=self.settings.token_env,
            )  # fmt: skip
        return self._http

    def _note(self, progress_log: Any, message: str) -> None:
        if callable(progress_log):
            progress_log(message)

    # -- RemoteBackend ------------------------------------------------------------------------

    def available(self) -> Availability:
        vram = HARDWARE_VRAM_GB.get(self.settings.hardware)
        extra = {"hardware": self.settings.hardware, "trainer": self.trainer}
        if not self._token and self._http is None:
            return Availability(
                False, f"{self.settings.token_env} is not set", vram_gb=vram, extra=extra
            )
        try:
            account = self.http.get_json("account")
        except RemoteTrainingError as exc:
            return Availability(False, str(exc), vram_gb=vram, extra=extra)
        user = account.get("username") if isinstance(account, dict) else None
        return Availability(True, f"Replicate account {user}", vram_gb=vram, extra=extra)

    def version(self) -> str:
        """The trainer's configured version, else its latest one."""
        if self.settings.version:
            return self.settings.version
        owner, name = _owner_name(self.trainer)
        model = self.http.get_json(f"models/{owner}/{name}")
        latest = (model.get("latest_version") or {}).get("id") if isinstance(model, dict) else None
        if not latest:
            raise RemoteTrainingError(f"replicate: {self.trainer} has no published version")
        return str(latest)

    def submit(
        self, dataset_dir: Path, config: LoraTrainingConfig, job_id: str, progress_log: Any
    ) -> str:
        destination = self.settings.destination
        if not destination:
            raise RemoteTrainingError(
                "training.replicate.destination must name a Replicate model you own "
                "(owner/name): a training pushes its weights there as a new version"
            )
        owner, name = _owner_name(self.trainer)
        version = self.version()
        dataset = build_dataset_zip(Path(dataset_dir))
        inputs, notes = trainer_input(
            self.trainer, config, "pending-upload", dataset.images, self.settings.extra_input
        )  # checked before the upload: a refused config costs no transfer
        self._note(progress_log, f"replicate: uploading {len(dataset.data) / 1e6:.1f} MB")
        uploaded = self.http.post_multipart(
            "files",
            {"metadata": json.dumps({"job_id": job_id})},
            {"content": (f"{job_id}.zip", dataset.data, "application/zip")},
        )
        url = ((uploaded or {}).get("urls") or {}).get("get")
        if not url:
            raise RemoteTrainingError("replicate POST /files: the answer has no urls.get")
        sha = ((uploaded or {}).get("checksums") or {}).get("sha256")
        if sha and sha != dataset.sha256:
            raise RemoteTrainingError(
                f"replicate POST /files: uploaded sha256 {sha} is not the zip's {dataset.sha256}"
            )
        inputs["input_images"] = url
        for note in notes:
            self._note(progress_log, f"replicate: {note}")
        training = self.http.post_json(
            f"models/{owner}/{name}/versions/{version}/trainings",
            {"destination": destination, "input": inputs},
        )
        remote_id = training.get("id") if isinstance(training, dict) else None
        if not remote_id:
            raise RemoteTrainingError("replicate: the created training has no id")
        self._note(
            progress_log,
            f"replicate: training {remote_id} on {self.trainer}:{version[:12]} "
            f"({dataset.images} images, {inputs.get('max_train_steps')} steps) -> {destination}",
        )
        return str(remote_id)

    def _training(self, remote_id: str) -> dict[str, Any]:
        training = self.http.get_json(f"trainings/{remote_id}")
        if not isinstance(training, dict) or "status" not in training:
            raise RemoteTrainingError(f"replicate GET /trainings/{remote_id}: no status")
        return training

    def status(self, remote_id: str) -> RemoteStatus:
        training = self._training(remote_id)
        raw = str(training["status"])
        if raw not in STATUSES:
            raise RemoteTrainingError(f"replicate: unknown training status {raw!r}")
        step, total, eta, loss = parse_progress(str(training.get("logs") or ""))
        seconds = (training.get("metrics") or {}).get("predict_time")
        if seconds is None:
            started = _parse_time(training.get("started_at"))
            ended = _parse_time(training.get("completed_at")) or self._now()
            seconds = (ended - started).total_seconds() if started else None
        error = training.get("error")
        output = training.get("output") or {}
        return RemoteStatus(
            status=STATUSES[raw],
            step=total if raw == "succeeded" and total else step,
            total_steps=total,
            loss=loss,
            eta_s=0.0 if raw == "succeeded" else eta,
            cost_usd=None if seconds is None else seconds * self.settings.price_per_second_usd,
            error=self.http.scrub(error)[:ERROR_CHARS] if error else None,
            seconds=None if seconds is None else float(seconds),
            extra={
                "replicate_status": raw,
                "version": output.get("version") if isinstance(output, dict) else None,
                "hardware": self.settings.hardware,
            },
        )

    def cancel(self, remote_id: str) -> None:
        try:
            self.http.post_json(f"trainings/{remote_id}/cancel")
        except RemoteRefused:
            # a training that already ended cannot be cancelled: nothing is left to stop
            if self._training(remote_id)["status"] not in ("succeeded", "failed", "canceled"):
                raise

    def logs(self, remote_id: str) -> list[str]:
        text = str(self._training(remote_id).get("logs") or "")
        return [line for line in re.split(r"[\r\n]+", text) if line.strip()]

    def download(self, remote_id: str, dest_dir: Path) -> Path:
        training = self._training(remote_id)
        if training["status"] != "succeeded":
            raise RemoteTrainingError(
                f"replicate: training {remote_id} is {training['status']}, not succeeded"
            )
        output = training.get("output")
        weights = output.get("weights") if isinstance(output, dict) else output
        if not isinstance(weights, str) or not weights:
            raise RemoteTrainingError(f"replicate: training {remote_id} output has no weights")
        dest_dir = Path(dest_dir)
        raw = self.http.download(weights, dest_dir / f"{remote_id}.download")
        try:
            path = write_diffusers_lora(
                raw.read_bytes(), dest_dir / WEIGHT_NAME, f"replicate training {remote_id}"
            )
        finally:
            raw.unlink(missing_ok=True)
        if self.verify_pipeline is not None:
            verify_loads(path, self.verify_pipeline)
        return path

    def estimate(self, seconds: float) -> dict[str, Any]:
        """Cost of ``seconds`` of training on the configured hardware."""
        return {
            "seconds": seconds,
            "cost_usd": round(seconds * self.settings.price_per_second_usd, 4),
            "hardware": self.settings.hardware,
            "vram_gb": HARDWARE_VRAM_GB.get(self.settings.hardware),
            "basis": f"{self.settings.price_per_second_usd} USD/s (training.replicate)",
        }
