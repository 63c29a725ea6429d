"""Launched runs fork their steps from a warm forkserver (``executor:`` settings, ADR 0006).

``step_executor`` turns each settings variant into the executor Dagster gets; the code
location's jobs carry it; one real ``dagster job execute`` of the ingest group on an empty
day runs its two steps in forked workers. Timing is measured by
``benchmarks/bench_startup.py``, not here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from style_pipeline.contracts.orchestration import ExecutorSettings
from style_pipeline.defs.executor import EXECUTOR_NAME, WARM_START_MODULE, step_executor
from style_pipeline.defs.jobs import ALL_JOBS
from style_pipeline.defs.run import load_defs

DAGSTER = Path(sys.executable).parent / "dagster"
EMPTY_DAY = "2026-01-05"


def mapped_config(executor: dg.ExecutorDefinition) -> dict:
    """The executor's config after its ``configured`` mapping (what the run will use)."""
    result = executor.apply_config_mapping({})
    assert result.success, result.errors
    return result.value["config"]


def test_in_process_is_dagsters_in_process_executor():
    assert step_executor(ExecutorSettings(kind="in_process")) is dg.in_process_executor


def test_forkserver_preloads_warm_start_on_every_cpu():
    executor = step_executor(ExecutorSettings())
    assert executor.name == EXECUTOR_NAME
    config = mapped_config(executor)
    assert config["start_method"] == {"forkserver": {"preload_modules": [WARM_START_MODULE]}}
    assert config.get("max_concurrent") is None  # 0 in the settings: one per CPU


def test_spawn_and_max_concurrent():
    settings = ExecutorSettings(start_method="spawn", max_concurrent=3)
    config = mapped_config(step_executor(settings))
    assert config["start_method"] == {"spawn": {}}
    assert config["max_concurrent"] == 3


def test_forkserver_falls_back_to_spawn_where_the_platform_lacks_it(monkeypatch):
    monkeypatch.setattr("multiprocessing.get_all_start_methods", lambda: ["spawn"])
    config = mapped_config(step_executor(ExecutorSettings()))
    assert config["start_method"] == {"spawn": {}}


def test_settings_reach_the_executor_through_the_environment(monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_EXECUTOR__KIND", "in_process")
    assert load_defs().resolve_job_def("ingest_job").executor_def is dg.in_process_executor


@pytest.mark.parametrize("job", [job.name for job in ALL_JOBS])
def test_the_code_locations_jobs_use_it(job):
    assert load_defs().resolve_job_def(job).executor_def.name == EXECUTOR_NAME


def test_ad_hoc_asset_jobs_use_it():
    """What the UI's "Materialize" builds: the implicit job of all assets."""
    job = load_defs().resolve_implicit_global_asset_job_def()
    assert job.executor_def.name == EXECUTOR_NAME


def test_a_launched_run_forks_its_steps_from_the_warm_server():
    env = {**os.environ, "STYLE_PIPELINE_EXECUTOR__PRELOAD": '["polars"]'}
    command = [str(DAGSTER), "job", "execute", "-m", "style_pipeline.definitions"]
    command += ["-j", "ingest_group_job", "--tags", json.dumps({"dagster/partition": EMPTY_DAY})]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "warm_start" not in done.stderr  # nothing skipped, definitions prebuilt

    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.job_name == "ingest_group_job"
        assert run.status == dg.DagsterRunStatus.SUCCESS
        events = [e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event]
    seen = {(e.event_type, e.step_key) for e in events}
    for step in ("raw_media", "frames"):
        assert (dg.DagsterEventType.STEP_WORKER_STARTING, step) in seen
        assert (dg.DagsterEventType.STEP_START, step) in seen
        assert (dg.DagsterEventType.STEP_SUCCESS, step) in seen
    engine = " ".join(e.message or "" for e in events if e.event_type_value == "ENGINE_EVENT")
    assert "multiprocess executor" in engine


def test_warm_start_skips_a_preload_module_that_does_not_exist():
    env = {**os.environ, "STYLE_PIPELINE_EXECUTOR__PRELOAD": '["polars", "no_such_module_xyz"]'}
    code = (
        "import style_pipeline.warm_start, style_pipeline.definitions as d, sys; "
        "assert 'polars' in sys.modules; assert d._WARM is not None and d.defs() is d._WARM"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stderr.splitlines() if "warm_start" in line]
    assert len(lines) == 1
    assert "skipped preloading no_such_module_xyz" in lines[0]
