"""``hot_folder_sensor``: one ``ingest_job`` run per settled file set, for the files' day.

The logic lives in ``style_pipeline.media.hotfolder``; this shell scans, plans, logs and
returns the requests with the new cursor. The per-file state lives in storage
(``media.sensor_state``) and the cursor only names its snapshot, so tick rows stay small
whatever the drop folder holds; each tick logs the cursor's size. When storage cannot be
read or written the tick is skipped and the cursor kept, so nothing is lost or requested
twice. The sensor starts RUNNING so that ``dagster dev`` / ``dagster-daemon`` watch the
drop folder without a click in the UI (the issue's "drop files and see runs" flow); it is
stopped like any sensor in the UI.
"""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg

from style_pipeline.defs.jobs import ingest_job
from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.resources import DropFolderResource, StorageResource
from style_pipeline.media.hotfolder import DateWindow, TickPlan, plan_tick
from style_pipeline.media.sensor_state import SensorStateStore
from style_pipeline.settings import load_settings

SENSOR_NAME = "hot_folder_sensor"


def now_epoch() -> float:
    """Wall-clock time of the tick (a seam tests replace to control time)."""
    return time.time()


def partition_window(now: float) -> DateWindow:
    """The dates that have a daily partition at ``now`` (today included)."""
    keys = DAILY_PARTITIONS.get_partition_keys(
        current_time=dt.datetime.fromtimestamp(now, tz=dt.UTC)
    )
    if not keys:
        raise ValueError(f"no daily partitions exist at {now}: is start_date in the future?")
    return DateWindow(dt.date.fromisoformat(keys[0]), dt.date.fromisoformat(keys[-1]))


@dg.sensor(
    name=SENSOR_NAME,
    target=ingest_job,
    minimum_interval_seconds=load_settings().sensor.minimum_interval_seconds,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def hot_folder_sensor(
    context: dg.SensorEvaluationContext,
    drop_folder: DropFolderResource,
    storage: StorageResource,
) -> dg.SensorResult:
    """Requests an ingest run for an arrival date once its files have settled and changed."""
    states = SensorStateStore(storage.store(), SENSOR_NAME)
    try:
        loaded = states.load(context.cursor)
    except OSError as exc:
        return _storage_unavailable(context, "read", states, exc)
    for warning in loaded.warnings:
        context.log.warning(warning)
    now = now_epoch()
    plan = plan_tick(
        drop_folder.scan(),
        loaded.state,
        now_epoch=now,
        settle_seconds=drop_folder.settle_seconds,
        hash_budget_seconds=drop_folder.hash_budget_seconds,
        valid_dates=partition_window(now),
        max_hash_bytes=drop_folder.max_hash_bytes(),
    )
    try:
        saved = states.save(plan.state, loaded.cursor)
    except OSError as exc:
        return _storage_unavailable(context, "write", states, exc)
    c = plan.counts
    context.log.info(
        f"{drop_folder.root()}: {c.files} files, {c.new} new, {c.settling} settling, "
        f"{c.hashed} hashed, {c.deferred} deferred, {c.unreadable} unreadable, "
        f"{c.out_of_range} out of range; {len(plan.requests)} run(s) requested"
    )
    context.log.info(
        f"cursor {len(saved.cursor_text.encode())} bytes (generation {saved.cursor.gen}); "
        f"state {saved.key}: {saved.cursor.files} files, {saved.snapshot_bytes} bytes, "
        f"{'written' if saved.written else 'unchanged'}, {saved.pruned} old snapshot(s) pruned"
    )
    for warning in saved.warnings:
        context.log.warning(warning)
    for reason in plan.skipped:
        context.log.warning(reason)
    for request in plan.requests:
        context.log.info(f"requesting {request.run_key} ({request.n_files} files)")
    if not plan.requests:
        return dg.SensorResult(skip_reason=_skip_reason(plan), cursor=saved.cursor_text)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=r.run_key,
                partition_key=r.partition_key,
                tags=r.tags,
                job_name=ingest_job.name,
            )
            for r in plan.requests
        ],
        cursor=saved.cursor_text,
    )


def _storage_unavailable(
    context: dg.SensorEvaluationContext, action: str, states: SensorStateStore, exc: OSError
) -> dg.SensorResult:
    """Skip the tick and keep the cursor (``cursor=None`` leaves Dagster's unchanged)."""
    message = (
        f"storage_unavailable: could not {action} the sensor state under "
        f"{states.store}/{states.prefix} ({type(exc).__name__}: {exc}); "
        "cursor kept, no run requested, retried next tick"
    )
    context.log.error(message)
    return dg.SensorResult(skip_reason=message, cursor=None)


def _skip_reason(plan: TickPlan) -> str:
    """Why a tick requested nothing, in one line for the sensor's tick history."""
    c = plan.counts
    if c.files == 0:
        return "the drop folder is empty"
    if c.settling or c.deferred or c.unreadable:
        return (
            f"waiting: {c.settling} file(s) settling, {c.deferred} left to hash, "
            f"{c.unreadable} unreadable"
        )
    if c.out_of_range == c.files:
        return "; ".join(plan.skipped)
    return "no new file sets"
