"""The nightly schedules, both for yesterday (UTC).

``nightly_training`` (02:00 UTC): caption, train, evaluate and promote yesterday's LoRA.
``nightly_llm`` (03:00 UTC, after it, so the two trainings do not share the GPU): audio,
transcripts and chat events, then aligned pairs, the SFT dataset, the LLM adapter, its
evaluation and promotion. A quiet day (nothing arrived, or no video with audio and no
chat log among what did) is skipped with its reason: no pairs, nothing to train.
"""

import datetime as dt
import io

import dagster as dg

from style_pipeline.defs.jobs import nightly_llm_job, nightly_training_job
from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.resources import SettingsResource


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


def llm_quiet_day(instance: dg.DagsterInstance, settings: SettingsResource, day: str) -> str | None:
    """Why the llm side has nothing to do on ``day`` (None: it has), from ``raw_media``:
    not materialized for the day (nothing arrived), or no accepted video with an audio
    stream and no accepted chat log among its rows. A table that cannot be read here
    (a storage outage) does not skip: the run reports it."""
    import polars as pl

    from style_pipeline.storage.layout import RAW_MEDIA, table_key
    from style_pipeline.storage.store import Store

    if day not in instance.get_materialized_partitions(dg.AssetKey(RAW_MEDIA)):
        return f"{day} is a quiet day: no raw_media (nothing arrived)"
    try:
        store = Store(settings.load().storage_root())
        raw = pl.read_parquet(io.BytesIO(store.read_bytes(table_key(RAW_MEDIA, day))))
    except Exception:  # unreadable here: let the run try (and report) it
        return None
    accepted = raw.filter(pl.col("status") == "accepted")
    speech = accepted.filter(pl.col("kind") == "chat")
    if "has_audio" in accepted.columns:
        speech = pl.concat(
            [speech, accepted.filter((pl.col("kind") == "video") & pl.col("has_audio"))]
        )
    if speech.is_empty():
        return f"{day} is a quiet day for the llm: no accepted video with audio and no chat log"
    return None


@dg.schedule(
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    target=nightly_llm_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def nightly_llm(
    context: dg.ScheduleEvaluationContext, settings: SettingsResource
) -> dg.RunRequest | dg.SkipReason:
    """Requests ``nightly_llm_job`` (speech + llm) for yesterday (UTC); skips quiet days."""
    partition = nightly_partition(context.scheduled_execution_time)
    if partition < DAILY_PARTITIONS.start.date().isoformat():
        return dg.SkipReason(f"{partition} is before the first partition")
    quiet = llm_quiet_day(context.instance, settings, partition)
    if quiet is not None:
        return dg.SkipReason(quiet)
    return dg.RunRequest(
        run_key=f"nightly_llm:{partition}",
        partition_key=partition,
        tags={"style_pipeline/trigger": "nightly_llm"},
        job_name=nightly_llm_job.name,
    )
