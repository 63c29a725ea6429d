"""The Replicate backend inside the job lifecycle (RemoteTrainingBackend) against the fake
Replicate API: a training run end to end (estimate, cost, weights loading into the tiny
SDXL pipeline), a crash then a re-run that resumes without a second training, a cancelled
run cancelling the training, and a failure mid-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from style_pipeline.contracts.remote_training import ReplicateSettings
from style_pipeline.storage.store import Store
from style_pipeline.training.backends import TrainingRequest
from style_pipeline.training.remote.base import RemoteTrainingError
from style_pipeline.training.remote.http import RemoteHttp, reset_breakers
from style_pipeline.training.remote.jobs import JobStore, RemoteTrainingBackend
from style_pipeline.training.remote.replicate import ReplicateBackend
from style_pipeline_tests.training.remote.replicate_fake import (
    TOKEN,
    FakeReplicate,
    ReplicateServer,
    lora_tensors,
    weights_payload,
)
from style_pipeline_tests.training.remote.test_replicate import FAST, XL

PARTITION = "2026-01-05"
PRICE = 0.001


@pytest.fixture(autouse=True)
def _fresh_breakers():
    reset_breakers()
    yield
    reset_breakers()


def jobs_backend(server, store, model, sleep=lambda s: None, lines=None):
    settings = ReplicateSettings(
        api_url=server.api_url, destination="tester/style", price_per_second_usd=PRICE
    )
    http = RemoteHttp(settings.api_url, FAST, "replicate", TOKEN, sleep=lambda s: None)
    remote = ReplicateBackend(settings, FAST, http=http, verify_pipeline=Path(model.path))
    return RemoteTrainingBackend(
        remote, JobStore(store), PARTITION, FAST, price_per_second_usd=PRICE,
        hardware=settings.hardware, sleep=sleep,
        log_line=lines.append if lines is not None else None,
    )  # fmt: skip


def trainings_created(fake: FakeReplicate) -> int:
    return sum(m == "POST" and p.endswith("/trainings") for m, p in fake.requests)


@pytest.fixture
def fake(tiny_sdxl_model) -> FakeReplicate:
    tensors = lora_tensors(Path(tiny_sdxl_model.path), "kohya")
    return FakeReplicate(weights=weights_payload(tensors, archive=True))


@pytest.fixture
def request_(tiny_dataset, tiny_sdxl_model, tmp_path) -> TrainingRequest:
    return TrainingRequest(Path(tiny_dataset), tmp_path / "out", XL, tiny_sdxl_model)


def test_a_training_end_to_end(tmp_path, fake, request_, tiny_sdxl_model):
    lines: list[str] = []
    with ReplicateServer(fake) as server:
        runner = jobs_backend(server, Store(tmp_path / "s"), tiny_sdxl_model, lines=lines)
        outcome = runner.train(request_)
    job = runner.job
    assert job is not None and job.status == "completed" and job.remote_id == "t00001"
    assert outcome.weights_path.is_file() and outcome.steps == 6
    assert job.cost_usd == pytest.approx(9.0 * PRICE) and job.actual["seconds"] == 9.0
    assert job.estimate["cost_usd"] >= 0 and "seconds" in job.estimate
    assert any("replicate: uploading" in line for line in lines)
    assert fake.cdn_authorization == [None]
    assert all(TOKEN not in line for line in lines)


def test_a_crash_then_a_rerun_resumes_the_training(tmp_path, fake, request_, tiny_sdxl_model):
    store = Store(tmp_path / "s")

    def crash(_seconds: float) -> None:
        raise RuntimeError("the step process died")

    with ReplicateServer(fake) as server:
        with pytest.raises(RuntimeError, match="died"):
            jobs_backend(server, store, tiny_sdxl_model, sleep=crash).train(request_)
        first = jobs_backend(server, store, tiny_sdxl_model)
        assert trainings_created(fake) == 1
        first.train(request_)
    assert trainings_created(fake) == 1 and first.job is not None
    assert first.job.status == "completed"


def test_a_cancelled_run_cancels_the_training(tmp_path, fake, request_, tiny_sdxl_model):
    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    with ReplicateServer(fake) as server:
        runner = jobs_backend(server, Store(tmp_path / "s"), tiny_sdxl_model, sleep=interrupt)
        with pytest.raises(KeyboardInterrupt):
            runner.train(request_)
    assert fake.trainings["t00001"]["status"] == "canceled"
    assert ("POST", "/v1/trainings/t00001/cancel") in fake.requests
    assert JobStore(Store(tmp_path / "s")).get(runner.job.job_id).status == "cancelled"  # type: ignore[union-attr]


def test_a_failure_mid_run_fails_the_job(tmp_path, fake, request_, tiny_sdxl_model):
    fake.fail_at_step = 4
    with ReplicateServer(fake) as server:
        runner = jobs_backend(server, Store(tmp_path / "s"), tiny_sdxl_model)
        with pytest.raises(RemoteTrainingError, match="CUDA out of memory"):
            runner.train(request_)
    job = runner.job
    assert job is not None and job.status == "failed" and TOKEN not in (job.error or "")
