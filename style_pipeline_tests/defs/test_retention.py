"""``retention_job`` through Dagster (local and S3 roots) and ``retention_schedule``."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from style_pipeline.defs.executor import EXECUTOR_NAME
from style_pipeline.defs.resources import SettingsResource
from style_pipeline.defs.retention import retention_schedule
from style_pipeline.defs.run import load_defs
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.stages.retention_store import TODAY, build


def run_retention(
    dry_run: bool | None, instance: dg.DagsterInstance | None = None
) -> tuple[dg.ExecuteInProcessResult, dict]:
    config: dict = {"today": TODAY.isoformat()}
    if dry_run is not None:
        config["dry_run"] = dry_run
    job = load_defs().resolve_job_def("retention_job")
    run_config = {"ops": {"retention": {"config": config}}}
    result = job.execute_in_process(run_config=run_config, instance=instance)
    outputs = [e for e in result.all_events if e.event_type_value == "STEP_OUTPUT"]
    metadata = {k: v.value for k, v in outputs[0].event_specific_data.metadata.items()}
    return result, metadata


@pytest.mark.parametrize("root", ["local", "s3"])
def test_the_job_deletes_exactly_the_expired_keys(root, request, monkeypatch):
    if root == "s3":
        monkeypatch.setenv("STYLE_PIPELINE_STORAGE", request.getfixturevalue("s3_root"))
    dated = build(Store(load_settings().storage_root()))
    result, metadata = run_retention(dry_run=False)
    assert result.success
    assert dated.keys() == dated.kept
    assert metadata["dry_run"] is False
    assert metadata["deleted_keys"] == metadata["planned_keys"] == len(dated.gone)
    assert metadata["lora_versions_keys"] == metadata["lora_versions_deleted_keys"] == 5
    assert metadata["raw_media_bytes"] == 1040
    assert metadata["caches_keys"] == 0
    assert "| frames | 14 |" in metadata["plan"]  # 2 days: 4 frame keys + faces, characters, crop
    assert "live LoRA version" in metadata["kept"]


def test_a_dry_run_only_plans(instance):
    dated = build(Store(load_settings().storage_root()))
    result, metadata = run_retention(dry_run=True, instance=instance)
    assert result.success and metadata["dry_run"] is True
    assert metadata["planned_keys"] == len(dated.gone) and metadata["deleted_keys"] == 0
    assert dated.keys() == dated.gone | dated.kept
    messages = [entry.user_message for entry in instance.all_logs(result.run_id)]
    assert any(m.startswith("would delete frames: frames/2026-03-01") for m in messages)
    assert any(m.startswith("kept lora_weights/2026-01-10.001") for m in messages)


def test_the_settings_dry_run_applies_when_the_run_does_not_say(monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_RETENTION__DRY_RUN", "true")
    dated = build(Store(load_settings().storage_root()))
    _, metadata = run_retention(dry_run=None)
    assert metadata["dry_run"] is True
    assert dated.keys() == dated.gone | dated.kept


def test_the_job_uses_the_code_locations_executor():
    assert load_defs().resolve_job_def("retention_job").executor_def.name == EXECUTOR_NAME


def test_the_schedule_runs_daily_after_the_nightly_run():
    schedule = load_defs().resolve_schedule_def("retention_schedule")
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.job_name == "retention_job"


def test_the_schedule_requests_the_ticks_day():
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 6, 30, 3, 30, tzinfo=dt.UTC),
        resources={"settings": SettingsResource()},
    )
    request = retention_schedule(context)
    assert isinstance(request, dg.RunRequest)
    assert request.run_key == "retention:2026-06-30"
    assert request.run_config == {"ops": {"retention": {"config": {"today": "2026-06-30"}}}}


def test_the_schedule_skips_when_retention_is_off(monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_RETENTION__ENABLED", "false")
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 6, 30, 3, 30, tzinfo=dt.UTC),
        resources={"settings": SettingsResource()},
    )
    skip = retention_schedule(context)
    assert isinstance(skip, dg.SkipReason)
    assert "retention.enabled is false" in (skip.skip_message or "")
