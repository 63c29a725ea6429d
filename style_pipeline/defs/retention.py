"""``retention_job`` and ``retention_schedule``: delete stored data past its limits, daily.

An op job, not an asset: retention produces nothing downstream reads, and an unpartitioned
asset among the daily ones would only add a node without data to the graph. The rules
are in ``stages/retention.py``; the limits are the ``retention:`` settings.

The schedule (``retention.schedule``, UTC, after the nightly run) starts RUNNING like the
nightly schedule and the hot-folder sensor: storage on S3 grows without bound otherwise,
and what it deletes is only what is past the documented limits, never what the live or
the kept LoRA versions depend on. ``retention.enabled: false`` makes its ticks skip (with
the reason shown in the UI), ``retention.dry_run: true`` makes its runs only plan and
log; ``style-pipeline retention --dry-run`` shows what a run would delete.
"""

import datetime as dt
from typing import TYPE_CHECKING, Any

import dagster as dg
from pydantic import Field

from style_pipeline.defs.resources import SettingsResource, StorageResource
from style_pipeline.settings import load_settings

if TYPE_CHECKING:
    from style_pipeline.stages.retention import RetentionPlan, RetentionResult

TRIGGER_TAG = "style_pipeline/trigger"


class RetentionConfig(dg.Config):
    """A retention run's options (the schedule fills ``today``)."""

    dry_run: bool | None = Field(
        default=None, description="only plan and log; None: the retention.dry_run setting"
    )
    today: str | None = Field(
        default=None, description="YYYY-MM-DD the limits count back from; None: today (UTC)"
    )


def _today(value: str | None) -> dt.date:
    return dt.date.fromisoformat(value) if value else dt.datetime.now(dt.UTC).date()


def retention_metadata(
    plan: "RetentionPlan", result: "RetentionResult | None", dry_run: bool
) -> dict[str, Any]:
    """Keys and bytes per category (planned, and deleted unless a dry run), a table of
    them, and what was kept although old."""
    from style_pipeline.stages.retention import human_bytes

    planned = plan.totals()
    deleted = result.totals() if result is not None else {c: (0, 0) for c in planned}
    rows = [
        "| category | keys | bytes | deleted keys | deleted bytes |",
        "|---|---:|---:|---:|---:|",
    ]
    metadata: dict[str, Any] = {"dry_run": dry_run, "today": plan.today.isoformat()}
    for category, (keys, size) in planned.items():
        gone_keys, gone_size = deleted[category]
        metadata[f"{category}_keys"] = keys
        metadata[f"{category}_bytes"] = size
        metadata[f"{category}_deleted_keys"] = gone_keys
        metadata[f"{category}_deleted_bytes"] = gone_size
        cells = [category, keys, human_bytes(size), gone_keys, human_bytes(gone_size)]
        rows.append("| " + " | ".join(str(c) for c in cells) + " |")
    metadata["planned_keys"] = sum(k for k, _ in planned.values())
    metadata["planned_bytes"] = sum(b for _, b in planned.values())
    metadata["deleted_keys"] = sum(k for k, _ in deleted.values())
    metadata["deleted_bytes"] = sum(b for _, b in deleted.values())
    metadata["skipped_keys"] = len(result.skipped) if result is not None else 0
    metadata["plan"] = dg.MetadataValue.md("\n".join(rows))
    kept = "\n".join(f"- {line}" for line in plan.protections) or "- nothing old is protected"
    metadata["kept"] = dg.MetadataValue.md(kept)
    return metadata


@dg.op(
    name="retention",
    out=dg.Out(dg.Nothing),
    tags={"domain": "operations"},
    description="Deletes stored data past the retention: limits (or only plans, dry run).",
)
def retention_op(
    context: dg.OpExecutionContext,
    config: RetentionConfig,
    settings: SettingsResource,
    storage: StorageResource,
) -> dg.Output[None]:
    """Plans, logs what is kept and why, deletes (unless dry run), reports counts and bytes."""
    from style_pipeline.stages.retention import apply_retention, plan_retention

    loaded = settings.load()
    dry_run = loaded.retention.dry_run if config.dry_run is None else config.dry_run
    store = storage.store()
    plan = plan_retention(store, loaded, _today(config.today))
    for line in plan.protections:
        context.log.info(f"kept {line}")
    if dry_run:
        for line in plan.lines():
            context.log.info(f"would delete {line}")
        result = None
    else:
        result = apply_retention(store, plan, context.log.info)
    return dg.Output(None, metadata=retention_metadata(plan, result, dry_run))


@dg.job(
    name="retention_job",
    description="Deletes stored data past the retention: limits (what retention_schedule runs).",
    tags={"domain": "operations"},
)
def retention_job() -> None:
    retention_op()


@dg.schedule(
    name="retention_schedule",
    cron_schedule=load_settings().retention.schedule,
    execution_timezone="UTC",
    target=retention_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
def retention_schedule(
    context: dg.ScheduleEvaluationContext, settings: SettingsResource
) -> dg.RunRequest | dg.SkipReason:
    """Requests ``retention_job`` for the tick's UTC day (skips when retention is off)."""
    if not settings.load().retention.enabled:
        return dg.SkipReason("retention.enabled is false in the settings")
    day = context.scheduled_execution_time.astimezone(dt.UTC).date().isoformat()
    return dg.RunRequest(
        run_key=f"retention:{day}",
        run_config={"ops": {"retention": {"config": {"today": day}}}},
        tags={TRIGGER_TAG: "retention"},
    )
