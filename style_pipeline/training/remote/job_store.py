"""Remote training jobs in the Store: ``training_jobs/<job_id>.json`` and ``.log`` beside it.

The record (:class:`TrainingJob`) is rewritten whole on every transition (atomic writes:
a crash leaves the previous record, never half of one), so a re-run and the ``jobs`` CLI
always read where a job stood last. The log keeps timestamped lines (transitions,
progress, errors), never a token. Light: contracts and storage only, so the CLI lists jobs
without importing torch.
"""

from __future__ import annotations

import builtins
import datetime as dt
import json
import logging
from collections.abc import Callable

from pydantic import ValidationError

from style_pipeline.contracts.remote_training import TrainingJob
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class JobStore:
    """Read and write job records and their log lines under ``training_jobs/``."""

    def __init__(self, store: Store, clock: Callable[[], dt.datetime] = utc_now) -> None:
        self.store, self.clock = store, clock

    def get(self, job_id: str) -> TrainingJob | None:
        """The record of ``job_id``; None when there is none (or it cannot be read)."""
        key = layout.training_job_key(job_id)
        if not self.store.exists(key):
            return None
        try:
            return TrainingJob.model_validate_json(self.store.read_bytes(key))
        except ValidationError as exc:
            log.warning("unreadable training job record %s (treated as absent): %s", key, exc)
            return None

    def save(self, job: TrainingJob) -> TrainingJob:
        """Write ``job`` with ``updated_at`` set to now; the record as written."""
        job = job.model_copy(update={"updated_at": self.clock()})
        TrainingJob.model_validate(job.model_dump())  # fields set by model_copy are checked
        self.store.put_bytes(
            job.model_dump_json(indent=1).encode(), layout.training_job_key(job.job_id)
        )
        return job

    def list(self) -> builtins.list[TrainingJob]:
        """Every readable record, the most recently updated first."""
        jobs = []
        for key in self.store.list(layout.TRAINING_JOBS):
            job_id = layout.training_job_of(key)
            if job_id is not None and (job := self.get(job_id)) is not None:
                jobs.append(job)
        return sorted(jobs, key=lambda j: j.updated_at, reverse=True)

    def find(self, prefix: str) -> TrainingJob:
        """The one job whose id starts with ``prefix`` (the CLI takes abbreviations)."""
        matches = [j for j in self.list() if j.job_id.startswith(prefix)]
        exact = [j for j in matches if j.job_id == prefix]
        if exact:
            return exact[0]
        if not matches:
            raise KeyError(f"no training job {prefix!r} in {self.store}")
        if len(matches) > 1:
            names = ", ".join(j.job_id for j in matches)
            raise KeyError(f"{prefix!r} names {len(matches)} jobs: {names}")
        return matches[0]

    def append_log(self, job_id: str, line: str) -> None:
        """Add a timestamped line to the job's log (read and rewritten: logs stay small)."""
        key = layout.training_job_log_key(job_id)
        old = self.store.read_bytes(key) if self.store.exists(key) else b""
        stamp = self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")
        self.store.put_bytes(old + f"{stamp} {line.rstrip()}\n".encode(), key)

    def log_lines(self, job_id: str) -> builtins.list[str]:
        key = layout.training_job_log_key(job_id)
        if not self.store.exists(key):
            return []
        return self.store.read_bytes(key).decode(errors="replace").splitlines()

    def dumps(self, job: TrainingJob) -> str:
        """The record as the CLI shows it (indented JSON)."""
        return json.dumps(job.model_dump(mode="json"), indent=1)
