"""JobStore: records and logs at their layout keys, ids checked, listing, prefixes."""

from __future__ import annotations

import datetime as dt

import pytest

from style_pipeline.contracts.remote_training import TrainingJob, job_id_for
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.remote.job_store import JobStore


def job(job_id: str) -> TrainingJob:
    now = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    return TrainingJob(
        job_id=job_id, backend="comfyui", partition="2026-01-05", config_hash="c",
        dataset_hash="d", created_at=now, updated_at=now,
    )  # fmt: skip


def test_keys_and_ids():
    job_id = job_id_for("comfyui", "c", "d")
    assert job_id == job_id_for("comfyui", "c", "d") != job_id_for("replicate", "c", "d")
    assert layout.training_job_key(job_id) == f"training_jobs/{job_id}.json"
    assert layout.training_job_log_key(job_id) == f"training_jobs/{job_id}.log"
    assert layout.training_job_of(f"training_jobs/{job_id}.json") == job_id
    assert layout.training_job_of(f"training_jobs/{job_id}.log") is None
    with pytest.raises(ValueError, match="not a training job id"):
        layout.training_job_key("../secrets")


def test_save_list_find_and_logs(tmp_path):
    times = iter(dt.datetime(2026, 1, 5, h, tzinfo=dt.UTC) for h in range(1, 10))
    jobs = JobStore(Store(tmp_path), clock=lambda: next(times))
    first, second = job_id_for("comfyui", "a", "d"), job_id_for("comfyui", "b", "d")
    jobs.save(job(first))
    jobs.save(job(second))
    jobs.save(jobs.get(first).model_copy(update={"status": "running", "step": 3}))
    assert [j.job_id for j in jobs.list()] == [first, second]  # most recently updated first
    assert jobs.get(first).status == "running" and jobs.get(first).step == 3
    assert jobs.find(first).job_id == first
    with pytest.raises(KeyError, match="names 2 jobs"):
        jobs.find("comfyui-")
    jobs.append_log(first, "one")
    jobs.append_log(first, "two\n")
    assert [line.split(" ", 1)[1] for line in jobs.log_lines(first)] == ["one", "two"]
    assert jobs.log_lines(second) == []


def test_an_unreadable_record_counts_as_absent(tmp_path):
    store = Store(tmp_path)
    job_id = job_id_for("replicate", "c", "d")
    store.put_bytes(b'{"job_id": "half', layout.training_job_key(job_id))
    assert JobStore(store).get(job_id) is None and JobStore(store).list() == []
