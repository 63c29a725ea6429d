"""``nightly_training``: at 02:00 UTC, caption, train, evaluate and promote yesterday's LoRA."""

import datetime as dt

import dagster as dg

from style_pipeline.defs.jobs import nightly_training_job
from style_pipeline.defs.partitions import DAILY_PARTITIONS


def nightly_partition(scheduled: dt.datetime) -> str:
    """The partition a tick at ``scheduled`` trains: the UTC day before it."""
    return (scheduled.astimezone(dt.UTC).date() - dt.timedelta(days=1)).isoformat()


@dg.schedule(
    cron_schedule="0 2 * * *",
    execution_timezone="UTC",
    target=nightly_training_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_training(context: dg.ScheduleEvaluationContext):
    """Requests ``nightly_training_job`` (captioning + training) for yesterday (UTC)."""
    partition = nightly_partition(context.scheduled_execution_time)
    if partition < DAILY_PARTITIONS.start.date().isoformat():
        return dg.SkipReason(f"{partition} is before the first partition")
    return dg.RunRequest(
        run_key=f"nightly:{partition}",
        partition_key=partition,
        tags={"style_pipeline/trigger": "nightly"},
        job_name=nightly_training_job.name,
    )
