"""The nightly schedule requests yesterday's partition at 02:00 UTC."""

import datetime as dt

import dagster as dg
import pytest

from style_pipeline.defs.schedules import nightly_partition, nightly_training


@pytest.mark.parametrize(
    ("scheduled", "expected"),
    [
        (dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC), "2026-11-20"),
        (dt.datetime(2026, 3, 1, 2, 0, tzinfo=dt.UTC), "2026-02-28"),
        (dt.datetime(2026, 1, 1, 2, 0, tzinfo=dt.UTC), "2025-12-31"),
        # an evaluation in another zone still means the UTC day before
        (
            dt.datetime(2026, 11, 21, 1, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
            "2026-11-20",
        ),
    ],
)
def test_nightly_partition_is_the_utc_day_before(scheduled, expected):
    assert nightly_partition(scheduled) == expected


def test_schedule_requests_yesterday():
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2026, 11, 21, 2, 0, tzinfo=dt.UTC)
    )
    request = nightly_training(context)
    assert isinstance(request, dg.RunRequest)
    assert request.partition_key == "2026-11-20"
    assert request.run_key == "nightly:2026-11-20"
    assert request.job_name == "nightly_training_job"


def test_schedule_skips_before_the_first_partition():
    context = dg.build_schedule_context(
        scheduled_execution_time=dt.datetime(2020, 1, 2, 2, 0, tzinfo=dt.UTC)
    )
    assert isinstance(nightly_training(context), dg.SkipReason)


def test_schedule_definition():
    assert nightly_training.cron_schedule == "0 2 * * *"
    assert nightly_training.execution_timezone == "UTC"
    assert nightly_training.job_name == "nightly_training_job"
