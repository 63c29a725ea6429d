"""The remote job lifecycle behind the trainer's ``TrainingBackend`` interface.

:class:`RemoteTrainingBackend` trains through a :class:`RemoteBackend` (ComfyUI, Replicate)
as if it trained locally: ``train(request)`` returns a ``TrainingOutcome`` whose weights
are a diffusers-format safetensors file, and ``train_and_publish`` publishes it as usual.

One job per (backend, config hash, dataset hash): ``job_id_for`` names it, and its record
(``training_jobs/<job_id>.json``, :class:`JobStore`) is rewritten on every transition
(queued -> uploading -> queued/running -> completed | failed | cancelled). ``train``:

- finds a **completed** job: downloads its weights again (no new training) when the
  service still has them, else submits anew;
- finds a job **not final** with a remote id (a crashed or cancelled-while-polling run):
  polls it instead of submitting a second one;
- otherwise (none, failed, cancelled, or lost before the service accepted it) estimates
  (VRAM and time from ``estimate_resources`` on a GPU, cost from the hardware's price),
  checks ``available()``, submits and polls every ``poll_interval_s``.

An interrupt (a cancelled Dagster run: SIGINT/SIGTERM -> ``KeyboardInterrupt`` in the
trainer process, or Dagster's own interrupt in-process) cancels the remote job and
records ``cancelled``; a SIGKILL leaves the record ``running`` for the next run to
resume. A job running past ``job_timeout_s`` (from submission) is cancelled and failed.
Transient poll errors (every retry failed, an answer that is not JSON) are waited out
until the backend's circuit opens; then the run fails and the job stays as it was, for
the next run to resume. The actual seconds and cost are stored beside the estimate.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from style_pipeline.contracts.remote_training import (
    RemoteCallSettings,
    TrainingJob,
    job_id_for,
)
from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.media.checksum import sha256_file
from style_pipeline.redaction import redact
from style_pipeline.training.backends import TrainingRequest
from style_pipeline.training.data import read_training_folder
from style_pipeline.training.estimates import estimate_resources
from style_pipeline.training.remote.base import (
    RemoteBackend,
    RemoteStatus,
    RemoteTrainingError,
)
from style_pipeline.training.remote.http import (
    CircuitOpen,
    RemoteBadAnswer,
    RemoteRefused,
    RemoteUnavailable,
)
from style_pipeline.training.remote.job_store import JobStore, utc_now
from style_pipeline.training.train_loop import (
    ProgressCallback,
    TrainingOutcome,
    TrainingProgress,
)

__all__ = ["JobStore", "RemoteOutcome", "RemoteTrainingBackend", "job_facts"]
log = logging.getLogger(__name__)
GONE_STATUSES = frozenset({404, 410})  # the service no longer knows the job


@dataclass(frozen=True)
class RemoteOutcome(TrainingOutcome):
    """A remote training's outcome; ``job`` (the record's summary) rides into the metadata."""

    job: dict[str, Any] = field(default_factory=dict)


def dataset_hash_of(dataset_dir: Path) -> str:
    from style_pipeline.training.trainer import dataset_hash_of as read_hash

    return read_hash(dataset_dir)


def job_facts(job: TrainingJob) -> dict[str, Any]:
    """What ``lora_weights`` shows of the job (scalars only: Pipes metadata drops dicts)."""
    est, act = job.estimate, job.actual
    facts: dict[str, Any] = {
        "job_id": job.job_id,
        "remote_id": job.remote_id or "-",
        "job_status": job.status,
        "cost_usd": round(job.cost_usd, 4) if job.cost_usd is not None else "-",
        "estimate_seconds": est.get("seconds", "-"),
        "actual_seconds": act.get("seconds", "-"),
        "estimate_cost_usd": est.get("cost_usd", "-"),
        "estimate_vram_gb": est.get("vram_gb", "-"),
    }
    if "seconds_ratio" in act:
        facts["actual_vs_estimate"] = act["seconds_ratio"]
    return facts


class RemoteTrainingBackend:
    """A ``TrainingBackend`` that trains on a remote service through a persisted job."""

    estimate_device = "cuda"  # the trainer's estimate is for the service's GPU

    def __init__(
        self,
        remote: RemoteBackend,
        jobs: JobStore,
        partition: str,
        settings: RemoteCallSettings,
        *,
        price_per_second_usd: float | None = None,
        hardware: str | None = None,
        log_line: Callable[[str], None] | None = None,
        log_every_n_steps: int = 25,
        run_id: str | None = None,
        secret_envs: tuple[str, ...] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.remote, self.jobs, self.partition, self.settings = remote, jobs, partition, settings
        self.name = remote.name
        self.price, self.hardware = price_per_second_usd, hardware
        self._log_line, self._every, self.run_id = log_line, max(1, log_every_n_steps), run_id
        self._sleep, self._secret_envs = sleep, secret_envs
        self.job: TrainingJob | None = None  # the last job train() touched

    # -- the TrainingBackend interface -------------------------------------------------------

    def train(
        self, request: TrainingRequest, progress: ProgressCallback | None = None
    ) -> TrainingOutcome:
        config = request.config
        dataset_hash = dataset_hash_of(request.dataset_dir)
        job_id = job_id_for(self.name, config.config_hash(), dataset_hash)
        n_images = len(read_training_folder(Path(request.dataset_dir)))
        job = self.jobs.get(job_id)
        if job is not None and job.status == "completed" and job.remote_id:
            reused = self._reuse(job, request)
            if reused is not None:
                job, weights = reused
                return self._outcome(job, request, n_images, [], weights, reused_weights=True)
            job = self.jobs.get(job_id)
        if job is not None and not job.final and job.remote_id:
            job = self._save(job, run_id=self.run_id, error=None)
            self._say(job, f"resuming {job.status} job (remote id {job.remote_id}): not submitting")
        else:
            job = self._submit(job, job_id, config, dataset_hash, request, n_images)
        job, losses = self._follow(job, progress)
        weights = self._download(job, request.output_dir)
        job = self._save(job, weights_sha256=sha256_file(weights), error=None)
        return self._outcome(job, request, n_images, losses, weights)

    # -- submit ---------------------------------------------------------------------------

    def _submit(
        self,
        previous: TrainingJob | None,
        job_id: str,
        config: LoraTrainingConfig,
        dataset_hash: str,
        request: TrainingRequest,
        n_images: int,
    ) -> TrainingJob:
        now = utc_now()
        attempts = list(previous.attempts) if previous else []
        if previous is not None:
            attempts.append(_attempt_summary(previous))
        job = TrainingJob(
            job_id=job_id, backend=self.name, partition=self.partition,
            config_hash=config.config_hash(), dataset_hash=dataset_hash, created_at=now,
            updated_at=now, run_id=self.run_id, attempts=attempts,
            estimate=self._estimate(config, request, n_images),
        )  # fmt: skip
        job = self._save(job)
        self._say(job, f"estimate: {_estimate_text(job.estimate)}")
        try:
            availability = self.remote.available()
            if not availability.ok:
                raise RemoteTrainingError(f"{self.name} is not available: {availability.detail}")
            need = job.estimate.get("vram_gb")
            if availability.vram_gb is not None and need and need > availability.vram_gb:
                self._say(
                    job,
                    f"WARNING: the estimate ({need:.1f} GB) exceeds the server's "
                    f"{availability.vram_gb:.1f} GB of VRAM: training may run out of memory",
                )
            job = self._save(job, status="uploading")
            self._say(job, f"uploading {n_images} images and submitting to {self.name}")
            remote_id = self.remote.submit(
                Path(request.dataset_dir), config, job_id, lambda line: self._say(job, line)
            )
        except RemoteTrainingError as exc:
            self._fail(job, f"submit failed: {exc}")
            raise
        except BaseException:  # an interrupt while uploading: nothing remote to cancel yet
            self._finish(job, "cancelled", "interrupted while submitting")
            raise
        job = self._save(job, status="queued", remote_id=remote_id, submitted_at=utc_now())
        self._say(job, f"submitted: remote id {remote_id}")
        return job

    def _estimate(
        self, config: LoraTrainingConfig, request: TrainingRequest, n_images: int
    ) -> dict[str, Any]:
        """VRAM and time on a GPU (the service's), and the cost at the configured price."""
        estimate = estimate_resources(config, Path(request.model.path), n_images, device="cuda")
        out: dict[str, Any] = {
            "vram_gb": round(estimate.memory_gb, 2),
            "seconds": round(estimate.total_seconds, 1),
            "step_seconds": estimate.step_seconds,
            "total_steps": estimate.total_steps,
            "basis": f"training.estimates on cuda (24 GB card class); {estimate.basis}",
        }
        if self.hardware:
            out["hardware"] = self.hardware
        if self.price is not None:
            out["price_per_second_usd"] = self.price
            out["cost_usd"] = round(estimate.total_seconds * self.price, 4)
        return out

    # -- follow ---------------------------------------------------------------------------

    def _follow(
        self, job: TrainingJob, progress: ProgressCallback | None
    ) -> tuple[TrainingJob, list[float]]:
        """Poll until the job is final; the completed job and the losses seen."""
        assert job.remote_id is not None
        remote_id, losses = job.remote_id, []
        submitted = job.submitted_at or job.created_at
        logged_bucket = -1
        try:
            while True:
                status = self._poll(job)
                if status is not None:
                    before = job
                    job = self._update(job, status)
                    if status.loss is not None and status.step != before.step:
                        losses.append(status.loss)
                    if progress and job.step and job.step != before.step:
                        progress(self._progress(job, submitted))
                    if job.status != before.status:
                        self._say(job, f"{before.status} -> {job.status}{_where(job)}")
                    elif job.step // self._every != logged_bucket and job.step:
                        self._say(job, f"{job.status}{_where(job)}")
                    logged_bucket = job.step // self._every
                    if job.status == "completed":
                        return job, list(status.extra.get("losses") or losses)
                    if job.status in ("failed", "cancelled"):
                        raise RemoteTrainingError(
                            f"{self.name} job {job.job_id} (remote id {remote_id}) "
                            f"{job.status}: {job.error or 'no reason given'}"
                        )
                age = (utc_now() - submitted).total_seconds()
                if age > self.settings.job_timeout_s:
                    self._cancel_remote(job)
                    self._fail(job, f"timed out after {age:.0f} s (training.remote.job_timeout_s)")
                    raise RemoteTrainingError(f"{self.name} job {job.job_id} timed out")
                self._sleep(self.settings.poll_interval_s)
        except BaseException as exc:
            if isinstance(exc, Exception):  # failed, timed out, lost contact: recorded above
                raise
            # a cancelled run: KeyboardInterrupt (the Pipes trainer's SIGINT/SIGTERM) or
            # Dagster's in-process interrupt (a BaseException too)
            self._cancel_remote(job)
            self._finish(self.jobs.get(job.job_id) or job, "cancelled", "the run was cancelled")
            raise

    def _poll(self, job: TrainingJob) -> RemoteStatus | None:
        """The service's status; None after a transient error (waited out until the circuit
        opens). A job the service no longer knows is failed."""
        assert job.remote_id is not None
        try:
            return self.remote.status(job.remote_id)
        except CircuitOpen as exc:
            self._save(job, error=f"lost contact: {exc}")
            self._say(job, f"lost contact with {self.name}; the job stays {job.status} for the "
                      "next run to resume")  # fmt: skip
            raise
        except (RemoteUnavailable, RemoteBadAnswer) as exc:
            self._say(job, f"status poll failed (will retry): {exc}")
            return None
        except RemoteRefused as exc:
            if exc.status in GONE_STATUSES:
                self._fail(job, f"the service no longer knows the job: {exc}")
            else:
                self._save(job, error=str(exc))
            raise

    def _update(self, job: TrainingJob, status: RemoteStatus) -> TrainingJob:
        changes: dict[str, Any] = {
            "step": status.step or job.step,
            "total_steps": status.total_steps or job.total_steps,
            "loss": status.loss if status.loss is not None else job.loss,
            "eta_s": status.eta_s,
            "cost_usd": self._cost(status) if self._cost(status) is not None else job.cost_usd,
        }
        if status.status == "running" and job.started_at is None:
            changes["started_at"] = utc_now()
        if status.status != job.status:
            changes["status"] = status.status
        if status.status in ("failed", "cancelled"):
            changes["error"] = self._scrub(status.error or f"{status.status} on the service")
            changes["finished_at"] = utc_now()
        if status.status == "completed":
            changes["finished_at"] = utc_now()
            changes["actual"] = self._actual(job, status)
            changes["error"] = None
        if all(getattr(job, k) == v for k, v in changes.items()):
            return job
        return self._save(job, **changes)

    def _cost(self, status: RemoteStatus) -> float | None:
        if status.cost_usd is not None:
            return status.cost_usd
        if status.seconds is not None and self.price is not None:
            return round(status.seconds * self.price, 4)
        return None

    def _actual(self, job: TrainingJob, status: RemoteStatus) -> dict[str, Any]:
        """Measured seconds and cost, beside the estimate's (kept to recalibrate it)."""
        now = utc_now()
        begun = job.started_at or job.submitted_at or job.created_at
        seconds = status.seconds if status.seconds is not None else (now - begun).total_seconds()
        actual: dict[str, Any] = {
            "seconds": round(seconds, 1),
            "source": "service" if status.seconds is not None else "polls",
            "steps": status.step or job.step,
        }
        if job.submitted_at is not None:
            actual["wall_seconds"] = round((now - job.submitted_at).total_seconds(), 1)
        cost = self._cost(status)
        if cost is not None:
            actual["cost_usd"] = cost
        estimate = job.estimate.get("seconds")
        if estimate:
            actual["seconds_ratio"] = round(seconds / estimate, 3)
        return actual

    def _progress(self, job: TrainingJob, submitted: dt.datetime) -> TrainingProgress:
        return TrainingProgress(
            step=job.step, total_steps=job.total_steps or job.step, epoch=0,
            loss=job.loss if job.loss is not None else float("nan"), lr=0.0,
            elapsed_s=(utc_now() - submitted).total_seconds(), eta_s=job.eta_s or 0.0,
        )  # fmt: skip

    # -- finish ---------------------------------------------------------------------------

    def _download(self, job: TrainingJob, output_dir: Path) -> Path:
        assert job.remote_id is not None
        try:
            weights = self.remote.download(job.remote_id, Path(output_dir))
        except RemoteTrainingError as exc:
            self._save(job, error=f"weights download failed: {exc}")
            self._say(job, f"weights download failed (a re-run downloads again): {exc}")
            raise
        self._say(job, f"downloaded {weights.name} ({weights.stat().st_size} bytes)")
        return weights

    def _reuse(self, job: TrainingJob, request: TrainingRequest) -> tuple[TrainingJob, Path] | None:
        """The completed job with its weights downloaded again; None when they are gone."""
        assert job.remote_id is not None
        self._say(job, f"completed job found (remote id {job.remote_id}): reusing its weights")
        try:
            weights = self.remote.download(job.remote_id, Path(request.output_dir))
        except RemoteTrainingError as exc:
            self._say(job, f"its weights cannot be downloaded ({exc}): submitting again")
            self._save(job, error=f"weights gone: {exc}")
            return None
        sha = sha256_file(weights)
        if job.weights_sha256 and sha != job.weights_sha256:
            self._say(job, f"note: weights sha256 {sha[:12]} differs from the recorded one")
        return self._save(job, weights_sha256=sha, run_id=self.run_id, error=None), weights

    def _outcome(
        self,
        job: TrainingJob,
        request: TrainingRequest,
        n_images: int,
        losses: list[float],
        weights: Path,
        *,
        reused_weights: bool = False,
    ) -> RemoteOutcome:
        self.job = job
        notes = [f"trained on {self.name}: job {job.job_id}, remote id {job.remote_id}"]
        if reused_weights:
            notes.append("weights of an earlier completed job, downloaded again (not retrained)")
        if job.loss is None and not losses:
            notes.append(f"{self.name} reported no loss: final_loss 0.0 is a placeholder")
        if losses:
            notes.append("losses sampled at each status poll, not every step")
        config = request.config
        return RemoteOutcome(
            weights_path=weights, steps=job.step or job.total_steps or 0,
            epochs=config.num_train_epochs if config.max_train_steps is None else 0,
            final_loss=float(job.loss if job.loss is not None else (losses or [0.0])[-1]),
            losses=tuple(losses), seconds=float(job.actual.get("seconds", 0.0)),
            device=f"remote:{self.name}", mixed_precision=config.mixed_precision,
            family=config.model_family, n_images=n_images,
            lora_parameters=_parameter_count(weights), notes=tuple(notes),
            determinism=f"remote ({self.name}): not controlled by this pipeline",
            job={**job_facts(job), "estimate": job.estimate, "actual": job.actual},
        )  # fmt: skip

    def _cancel_remote(self, job: TrainingJob) -> None:
        if not job.remote_id:
            return
        try:
            self.remote.cancel(job.remote_id)
            self._say(job, f"cancel sent to {self.name}")
        except Exception as exc:  # noqa: BLE001 - cancelling is best effort, the run ends anyway
            self._say(job, f"cancel failed (the job may still run on {self.name}): {exc}")

    def _fail(self, job: TrainingJob, error: str) -> TrainingJob:
        return self._finish(job, "failed", error)

    def _finish(self, job: TrainingJob, status: str, error: str) -> TrainingJob:
        job = self._save(job, status=status, error=self._scrub(error), finished_at=utc_now())
        self._say(job, f"{status}: {job.error}")
        return job

    # -- records and logs -----------------------------------------------------------------

    def _save(self, job: TrainingJob, **changes: Any) -> TrainingJob:
        saved = self.jobs.save(job.model_copy(update=changes) if changes else job)
        self.job = saved
        return saved

    def _say(self, job: TrainingJob, line: str) -> None:
        line = self._scrub(line)
        self.jobs.append_log(job.job_id, line)
        text = f"{self.name} job {job.job_id}: {line}"
        log.info(text)
        if self._log_line:
            self._log_line(text)

    def _scrub(self, text: str) -> str:
        return redact(text, self._secret_envs)


def _attempt_summary(job: TrainingJob) -> dict[str, Any]:
    status = job.status if job.final else f"lost while {job.status}"
    return {
        "remote_id": job.remote_id,
        "status": status,
        "error": job.error,
        "submitted_at": job.submitted_at.isoformat() if job.submitted_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "cost_usd": job.cost_usd,
    }


def _where(job: TrainingJob) -> str:
    parts = []
    if job.step:
        parts.append(f"step {job.step}/{job.total_steps or '?'}")
    if job.loss is not None:
        parts.append(f"loss {job.loss:.4g}")
    if job.eta_s is not None:
        parts.append(f"eta {job.eta_s:.0f}s")
    if job.cost_usd is not None:
        parts.append(f"cost ${job.cost_usd:.4f}")
    return f" ({', '.join(parts)})" if parts else ""


def _estimate_text(estimate: dict[str, Any]) -> str:
    text = (
        f"~{estimate.get('vram_gb', '?')} GB VRAM, ~{estimate.get('seconds', 0) / 60:.1f} min "
        f"for {estimate.get('total_steps', '?')} steps"
    )
    if "cost_usd" in estimate:
        text += f", ~${estimate['cost_usd']:.4f} on {estimate.get('hardware', 'the hardware')}"
    return text


def _parameter_count(weights: Path) -> int:
    from safetensors import safe_open

    total = 0
    with safe_open(str(weights), framework="pt") as fh:
        for key in fh.keys():
            count = 1
            for dim in fh.get_slice(key).get_shape():
                count *= dim
            total += count
    return total
