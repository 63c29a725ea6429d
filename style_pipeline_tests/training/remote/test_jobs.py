"""The remote job lifecycle (training.remote.jobs) with an in-memory service: submit and
follow, a crash then a re-run that resumes (no second submit), cancel, timeout, failure
mid-run, transient poll errors, a lost service, a completed job's weights reused, and the
job's facts in the published version and the lora_weights stage."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from style_pipeline.contracts.remote_training import RemoteCallSettings, job_id_for
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.backends import TrainingRequest
from style_pipeline.training.presets import load_preset
from style_pipeline.training.remote.base import Availability, RemoteStatus, RemoteTrainingError
from style_pipeline.training.remote.http import (
    CircuitOpen,
    RemoteBadAnswer,
    RemoteRefused,
    RemoteUnavailable,
)
from style_pipeline.training.remote.jobs import JobStore, RemoteTrainingBackend
from style_pipeline.training.trainer import dataset_hash_of, train_and_publish
from style_pipeline_tests.training.remote.fake_backend import (
    FakeRemote,
    done,
    remote_stage_setup,
    running,
)

PARTITION = "2026-01-05"
SECRET = "r8_fakeTokenValue0123456789abcdef"
CONFIG = load_preset("tiny")


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "storage")


@pytest.fixture
def request_(tiny_dataset, tiny_model, tmp_path) -> TrainingRequest:
    return TrainingRequest(Path(tiny_dataset), tmp_path / "out", CONFIG, tiny_model)


def backend(remote, store, lines=None, **kw) -> RemoteTrainingBackend:
    settings = RemoteCallSettings(poll_interval_s=1.0, **kw.pop("call", {}))
    kw.setdefault("sleep", lambda s: None)
    return RemoteTrainingBackend(
        remote, JobStore(store), PARTITION, settings,
        log_line=lines.append if lines is not None else None, **kw,
    )  # fmt: skip


def the_job(store, request_):
    job_id = job_id_for("comfyui", CONFIG.config_hash(), dataset_hash_of(request_.dataset_dir))
    return JobStore(store).get(job_id)


def test_submits_follows_and_records_estimate_and_actual(store, request_):
    fake = FakeRemote([RemoteStatus("queued"), running(3), running(7), done(seconds=90.0)])
    lines: list[str] = []
    seen = []
    remote = backend(fake, store, lines, price_per_second_usd=0.001, hardware="gpu-x")
    outcome = remote.train(request_, seen.append)
    assert fake.submits == ["remote-1"] and fake.cancels == []
    assert outcome.weights_path.is_file() and outcome.device == "remote:comfyui"
    assert outcome.lora_parameters == 4 * 32 + 32 * 4
    assert outcome.final_loss == 0.25 and outcome.losses == (0.5, 0.5, 0.25)
    assert [p.step for p in seen] == [3, 7, 10]
    job = the_job(store, request_)
    assert job.status == "completed" and job.remote_id == "remote-1"
    assert job.submitted_at and job.started_at and job.finished_at
    assert job.weights_sha256 and job.error is None
    assert job.estimate["vram_gb"] > 0 and job.estimate["seconds"] > 0
    assert job.estimate["cost_usd"] == pytest.approx(job.estimate["seconds"] * 0.001, abs=1e-3)
    assert job.actual["seconds"] == 90.0 and job.actual["source"] == "service"
    assert job.actual["cost_usd"] == pytest.approx(0.09)
    assert job.actual["seconds_ratio"] == pytest.approx(90.0 / job.estimate["seconds"], rel=1e-2)
    assert outcome.job["job_id"] == job.job_id and outcome.job["cost_usd"] == pytest.approx(0.09)
    log_text = "\n".join(JobStore(store).log_lines(job.job_id))
    for expected in ("estimate:", "uploaded 4 images", "submitted: remote id remote-1",
                     "queued -> running", "running -> completed", "downloaded"):  # fmt: skip
        assert expected in log_text
        assert any(expected in line for line in lines)


def test_a_crash_then_a_rerun_resumes_the_job_without_a_second_submit(store, request_, tmp_path):
    service = tmp_path / "service.json"

    def crashing_run() -> None:
        def kill_on_second_poll(polls: int) -> None:
            if polls >= 2:
                os.kill(os.getpid(), signal.SIGKILL)  # no handler runs: a real crash

        fake = FakeRemote([running(3)], state=service, on_status=kill_on_second_poll)
        backend(fake, store).train(request_)

    child = multiprocessing.get_context("fork").Process(target=crashing_run)
    child.start()
    child.join(120)
    assert child.exitcode == -signal.SIGKILL
    job = the_job(store, request_)
    assert job.status == "running" and job.remote_id == "remote-1" and job.step == 3

    fake = FakeRemote([running(8), done()], state=service)
    lines: list[str] = []
    outcome = backend(fake, store, lines).train(request_)
    assert fake.submits == ["remote-1"]  # still the one submission
    assert fake.cancels == []
    assert any("resuming running job (remote id remote-1)" in line for line in lines)
    job = the_job(store, request_)
    assert job.status == "completed" and job.attempts == []
    assert outcome.weights_path.is_file()


def test_cancelling_the_run_cancels_the_remote_job(store, request_):
    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt  # what the Pipes trainer gets on a cancelled run

    fake = FakeRemote([running(2)])
    with pytest.raises(KeyboardInterrupt):
        backend(fake, store, sleep=interrupt).train(request_)
    assert fake.cancels == ["remote-1"]
    job = the_job(store, request_)
    assert job.status == "cancelled" and job.error == "the run was cancelled"
    # a re-run submits again (a cancelled job is final) and keeps the earlier attempt
    again = FakeRemote([done()])
    backend(again, store).train(request_)
    job = the_job(store, request_)
    assert job.status == "completed" and [a["status"] for a in job.attempts] == ["cancelled"]


def test_a_job_cancelled_on_the_service_fails_the_run(store, request_):
    fake = FakeRemote([running(2), RemoteStatus("cancelled", error="interrupted by the user")])
    with pytest.raises(RemoteTrainingError, match="cancelled: interrupted by the user"):
        backend(fake, store).train(request_)
    assert the_job(store, request_).status == "cancelled"


def test_a_job_past_its_timeout_is_cancelled_and_failed(store, request_):
    fake = FakeRemote([running(1)])
    with pytest.raises(RemoteTrainingError, match="timed out"):
        backend(fake, store, call={"job_timeout_s": 1e-6}).train(request_)
    assert fake.cancels == ["remote-1"]
    job = the_job(store, request_)
    assert job.status == "failed" and "training.remote.job_timeout_s" in job.error


def test_a_failure_mid_run_is_recorded_without_the_token(store, request_, monkeypatch):
    monkeypatch.setenv("REPLICATE_API_TOKEN", SECRET)
    error = f"CUDA out of memory (token {SECRET}, Authorization: Bearer {SECRET})"
    fake = FakeRemote([running(4), RemoteStatus("failed", step=4, error=error)])
    lines: list[str] = []
    with pytest.raises(RemoteTrainingError, match="CUDA out of memory") as err:
        backend(fake, store, lines, secret_envs=("REPLICATE_API_TOKEN",)).train(request_)
    job = the_job(store, request_)
    assert job.status == "failed" and "CUDA out of memory" in job.error
    stored = store.read_bytes(layout.training_job_key(job.job_id)).decode()
    stored += store.read_bytes(layout.training_job_log_key(job.job_id)).decode()
    for text in (str(err.value), job.error, stored, *lines):
        assert SECRET not in text


def test_transient_poll_errors_are_waited_out(store, request_):
    flaky = [RemoteUnavailable("x GET /history/1: gave up"), RemoteBadAnswer("not JSON")]
    fake = FakeRemote([running(1), *flaky, done()])
    lines: list[str] = []
    backend(fake, store, lines).train(request_)
    assert the_job(store, request_).status == "completed"
    assert sum("status poll failed (will retry)" in line for line in lines) == 2


def test_a_lost_service_leaves_the_job_for_the_next_run(store, request_):
    fake = FakeRemote([running(5), CircuitOpen("comfyui: circuit open")])
    with pytest.raises(CircuitOpen):
        backend(fake, store).train(request_)
    job = the_job(store, request_)
    assert job.status == "running" and "lost contact" in job.error
    assert fake.cancels == []
    resumed = FakeRemote([done()])
    resumed._state["submits"] = ["remote-1"]
    backend(resumed, store).train(request_)
    assert resumed.submits == ["remote-1"]
    assert the_job(store, request_).status == "completed"


def test_a_job_the_service_forgot_is_failed(store, request_):
    fake = FakeRemote([running(1), RemoteRefused("GET /trainings/remote-1: HTTP 404", 404)])
    with pytest.raises(RemoteRefused):
        backend(fake, store).train(request_)
    assert the_job(store, request_).status == "failed"


def test_an_unavailable_service_gets_no_submission(store, request_):
    fake = FakeRemote([done()], available=Availability(False, "no GPU device"))
    with pytest.raises(RemoteTrainingError, match="not available: no GPU device"):
        backend(fake, store).train(request_)
    assert fake.submits == []
    assert the_job(store, request_).status == "failed"


def test_too_little_vram_is_warned_about(store, request_):
    fake = FakeRemote([done()], available=Availability(True, "ok", vram_gb=0.001))
    lines: list[str] = []
    backend(fake, store, lines).train(request_)
    assert any("exceeds the server's 0.0 GB of VRAM" in line for line in lines)


def test_a_completed_job_is_reused_while_its_weights_can_be_downloaded(store, request_):
    backend(FakeRemote([done()]), store).train(request_)
    again = FakeRemote([done()])
    again._state["submits"] = ["remote-1"]
    outcome = backend(again, store).train(request_)
    assert again.submits == ["remote-1"] and again.downloads == 1
    assert any("not retrained" in note for note in outcome.notes)
    # the service dropped the weights: train again
    gone = FakeRemote([done()], weights_gone=True)
    gone._state["submits"] = ["remote-1"]
    with pytest.raises(RemoteTrainingError, match="no longer on the server"):
        backend(gone, store).train(request_)
    assert gone.submits == ["remote-1", "remote-2"]


def test_published_version_carries_the_job(store, request_, tiny_model):
    fake = FakeRemote([running(5), done()])
    remote = backend(fake, store)
    published = train_and_publish(
        store, PARTITION, CONFIG, request_.dataset_dir, tiny_model, backend=remote
    )
    meta = published.metadata
    assert meta["backend"] == "comfyui" and meta["device"] == "remote:comfyui"
    assert meta["estimate"]["device"] == "cuda"  # the service's GPU, not this machine
    assert meta["job"]["job_id"] == remote.job.job_id and meta["job"]["job_status"] == "completed"
    assert store.exists(published.weights_key)


def test_the_stage_trains_on_the_configured_backend(tmp_path, monkeypatch):
    from style_pipeline.stages import lora_weights

    store, fake, settings = remote_stage_setup(tmp_path, monkeypatch, PARTITION)
    lines: list[str] = []
    document, facts = lora_weights.train_lora(store, PARTITION, settings, log=lines.append)
    assert document.backend == "comfyui" and fake.submits == ["remote-1"]
    assert facts["backend"] == "comfyui" and facts["job_status"] == "completed"
    assert facts["remote_id"] == "remote-1" and str(facts["job_id"]).startswith("comfyui-")
    assert isinstance(facts["estimate_seconds"], float)
    assert all(not isinstance(v, dict) for k, v in facts.items() if k not in ("latent_cache",))
    assert any("submitted: remote id remote-1" in line for line in lines)
