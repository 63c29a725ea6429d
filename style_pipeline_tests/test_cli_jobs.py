"""``style-pipeline jobs list|show|cancel|logs`` through typer's CliRunner."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from style_pipeline.cli import app
from style_pipeline.contracts.remote_training import TrainingJob, job_id_for
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline.training.remote import factory
from style_pipeline.training.remote.base import RemoteTrainingError
from style_pipeline.training.remote.job_store import JobStore, utc_now

RUNNING = job_id_for("comfyui", "c1", "d1")
DONE = job_id_for("replicate", "c2", "d2")


class Service:
    name = "comfyui"

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.cancelled = fail, []

    def cancel(self, remote_id: str) -> None:
        if self.fail:
            raise RemoteTrainingError("comfyui POST /interrupt: gave up after 5 attempts")
        self.cancelled.append(remote_id)

    def logs(self, remote_id: str) -> list[str]:
        return [f"[{remote_id}] epoch 1 loss 0.12"]


@pytest.fixture
def jobs(monkeypatch) -> JobStore:
    monkeypatch.setenv("COLUMNS", "200")
    jobs = JobStore(Store(load_settings().storage_root()))
    now = utc_now()
    common = {"partition": "2026-01-05", "created_at": now, "updated_at": now}
    jobs.save(TrainingJob(
        job_id=RUNNING, backend="comfyui", remote_id="p-1", config_hash="c1",
        dataset_hash="d1", status="running", step=40, total_steps=100,
        estimate={"seconds": 600.0}, **common,
    ))  # fmt: skip
    jobs.save(TrainingJob(
        job_id=DONE, backend="replicate", remote_id="t-9", config_hash="c2",
        dataset_hash="d2", status="completed", step=100, total_steps=100, cost_usd=0.42,
        estimate={"seconds": 600.0}, actual={"seconds": 720.0}, **common,
    ))  # fmt: skip
    jobs.append_log(RUNNING, "submitted: remote id p-1")
    return jobs


def _run(*args: str):
    return CliRunner().invoke(app, ["jobs", *args])


def test_list_shows_status_progress_cost_and_estimates(jobs):
    result = _run("list")
    assert result.exit_code == 0, result.output
    for text in (RUNNING, DONE, "running", "completed", "40/100", "$0.4200", "10.0 min",
                 "12.0 min"):  # fmt: skip
        assert text in result.output


def test_list_without_jobs():
    result = _run("list")
    assert result.exit_code == 0 and "no remote training jobs" in result.output


def test_show_takes_a_prefix(jobs):
    result = _run("show", "comfyui-")
    assert result.exit_code == 0, result.output
    assert '"remote_id": "p-1"' in result.output and "submitted: remote id p-1" in result.output
    ambiguous = _run("show", "")
    assert ambiguous.exit_code == 1 and "names 2 jobs" in ambiguous.output
    assert _run("show", "nope").exit_code == 1


def test_cancel_asks_the_service_and_records_it(jobs, monkeypatch):
    service = Service()
    monkeypatch.setattr(factory, "remote_backend", lambda training: service)
    result = _run("cancel", RUNNING)
    assert result.exit_code == 0, result.output
    assert service.cancelled == ["p-1"]
    job = jobs.get(RUNNING)
    assert job.status == "cancelled" and "jobs cancel" in job.error
    assert "already cancelled" in _run("cancel", RUNNING).output


def test_a_failed_cancel_keeps_the_job_unless_forced(jobs, monkeypatch):
    monkeypatch.setattr(factory, "remote_backend", lambda training: Service(fail=True))
    result = _run("cancel", RUNNING)
    assert result.exit_code == 1 and "cancel failed" in result.output
    assert jobs.get(RUNNING).status == "running"
    forced = _run("cancel", RUNNING, "--force")
    assert forced.exit_code == 0 and jobs.get(RUNNING).status == "cancelled"


def test_logs_show_ours_then_the_service(jobs, monkeypatch):
    monkeypatch.setattr(factory, "remote_backend", lambda training: Service())
    result = _run("logs", RUNNING)
    assert result.exit_code == 0, result.output
    assert "submitted: remote id p-1" in result.output and "[p-1] epoch 1" in result.output
    local = _run("logs", RUNNING, "--no-remote")
    assert "[p-1] epoch 1" not in local.output
