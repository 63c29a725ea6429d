"""The nightly LLM schedule: yesterday at 03:00 UTC, quiet days skipped with their reason."""

import datetime as dt
import io

import dagster as dg
import polars as pl
import pytest

from style_pipeline.defs.jobs import ALL_JOBS, NIGHTLY_LLM_SELECTION
from style_pipeline.defs.resources import SettingsResource
from style_pipeline.defs.schedules import nightly_llm
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store

TICK = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
DAY = "2026-11-25"


def _tick(instance, when=TICK):
    """What the schedule returns for a tick; the context is closed after it (it enters the
    instance, which would otherwise stay the current one after the test)."""
    with dg.build_schedule_context(
        scheduled_execution_time=when,
        instance=instance,
        resources={"settings": SettingsResource()},
    ) as context:
        return nightly_llm(context)


def _arrived(instance, rows: list[dict]) -> None:
    """raw_media of DAY stored with these rows and recorded as materialized."""
    frame = pl.DataFrame(
        rows, schema={"kind": pl.String, "status": pl.String, "has_audio": pl.Boolean}
    )
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    Store(load_settings().storage_root()).put_bytes(buffer.getvalue(), f"raw_media/{DAY}.parquet")
    instance.report_runless_asset_event(dg.AssetMaterialization("raw_media", partition=DAY))


def test_the_schedule_definition():
    assert nightly_llm.cron_schedule == "0 3 * * *"
    assert nightly_llm.execution_timezone == "UTC"
    assert nightly_llm.job_name == "nightly_llm_job"
    assert {"nightly_llm_job", "speech_job", "llm_job"} <= {job.name for job in ALL_JOBS}
    assert NIGHTLY_LLM_SELECTION == dg.AssetSelection.groups("speech", "llm")


def test_a_day_nothing_arrived_is_skipped(instance):
    skip = _tick(instance)
    assert isinstance(skip, dg.SkipReason)
    assert "quiet day" in skip.skip_message and "nothing arrived" in skip.skip_message


def test_a_day_of_photos_or_silent_videos_is_skipped(instance):
    _arrived(
        instance,
        [
            {"kind": "image", "status": "accepted", "has_audio": None},
            {"kind": "video", "status": "accepted", "has_audio": False},
            {"kind": "video", "status": "rejected", "has_audio": True},
            {"kind": "chat", "status": "rejected", "has_audio": None},
        ],
    )
    skip = _tick(instance)
    assert isinstance(skip, dg.SkipReason)
    assert "no accepted video with audio and no chat log" in skip.skip_message


@pytest.mark.parametrize(
    "row",
    [
        {"kind": "video", "status": "accepted", "has_audio": True},
        {"kind": "chat", "status": "accepted", "has_audio": None},
    ],
)
def test_a_day_with_speech_or_chat_requests_yesterday(instance, row):
    _arrived(instance, [{"kind": "image", "status": "accepted", "has_audio": None}, row])
    request = _tick(instance)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == DAY
    assert request.run_key == f"nightly_llm:{DAY}"
    assert request.job_name == "nightly_llm_job"


def test_an_unreadable_table_does_not_skip(instance):
    instance.report_runless_asset_event(dg.AssetMaterialization("raw_media", partition=DAY))
    assert isinstance(_tick(instance), dg.RunRequest)  # the run reports it


def test_before_the_first_partition_is_skipped(instance):
    early = dt.datetime(2020, 1, 2, 3, 0, tzinfo=dt.UTC)
    skip = _tick(instance, early)
    assert isinstance(skip, dg.SkipReason) and "first partition" in skip.skip_message
