"""Run assets through the Dagster instance from Python (used by the CLI and the demo).

A CLI run executes inside the ``style-pipeline`` process, so when that process is killed
(kill -9, OOM, a closed laptop) nothing marks the run finished and it would stay STARTED
forever. Every CLI run is tagged with its pid, process start time and host; each start
fails the runs of this host whose process is gone (public instance API only).

A run that materializes ``raw_media`` for a date records the file set it ingested in the
hot-folder sensor's state (``media.sensor_state.RecordedSet``), so the sensor's next tick
(``dagster dev`` after ``style-pipeline demo``) does not ingest the same files again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from style_pipeline.paths import PROJECT_ROOT
from style_pipeline.processes import pid_alive

DEFAULT_DAGSTER_HOME = PROJECT_ROOT / ".dagster"
TRIGGER_TAG = "style_pipeline/trigger"
PID_TAG = "style_pipeline/pid"
HOST_TAG = "style_pipeline/host"
# The pid's start time (Linux clock ticks since boot): a reused pid has another one.
PID_START_TAG = "style_pipeline/pid_start"
UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]

log = logging.getLogger(__name__)


def open_instance() -> dg.DagsterInstance:
    """The ``DAGSTER_HOME`` instance, opened under a lock on that folder.

    Opening a new SQLite instance creates its tables; two commands starting at once on a
    fresh ``DAGSTER_HOME`` raced there ("table secondary_indexes already exists"). The
    lock makes the second wait until the first has created them.
    """
    home = os.environ.get("DAGSTER_HOME")
    if not home:
        return dg.DagsterInstance.get()  # raises Dagster's own clear error
    Path(home).mkdir(parents=True, exist_ok=True)
    with open(Path(home) / ".style_pipeline-open.lock", "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return dg.DagsterInstance.get()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_dagster_home() -> Path:
    """``DAGSTER_HOME`` (default ``.dagster/``), holding a copy of the project dagster.yaml."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).resolve()
    home.mkdir(parents=True, exist_ok=True)
    template = PROJECT_ROOT / "dagster.yaml"
    target = home / "dagster.yaml"
    if template.is_file() and template.resolve() != target.resolve():
        if not target.exists() or target.read_bytes() != template.read_bytes():
            shutil.copyfile(template, target)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of ``pid`` from /proc; None where there is no /proc entry."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()  # after "pid (comm)", which may hold spaces
    return fields[0], fields[19]


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when ``started`` is given, is that process."""
    if not pid_alive(pid):
        return False
    stat = _proc_stat(pid)
    if stat is None:  # no /proc (macOS): the signal check is all there is
        return True
    state, start = stat
    return state != "Z" and (started is None or start == started)


def cli_run_tags() -> dict[str, str]:
    """Tags of a run executed by this process: trigger, pid, its start time, host."""
    tags = {TRIGGER_TAG: "cli", PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    if stat := _proc_stat(os.getpid()):
        tags[PID_START_TAG] = stat[1]
    return tags


def fail_orphaned_runs(instance: dg.DagsterInstance, host: str | None = None) -> list[str]:
    """Mark failed this host's CLI runs left STARTING/STARTED by a process that is gone.

    Runs of other hosts are left alone (their pids mean nothing here), and so are runs
    launched by the daemon: Dagster's run monitoring watches those. Returns the run ids.
    """
    host = host or socket.gethostname()
    filters = dg.RunsFilter(statuses=UNFINISHED, tags={TRIGGER_TAG: "cli", HOST_TAG: host})
    failed = []
    for run in instance.get_runs(filters=filters):
        try:
            pid = int(run.tags[PID_TAG])
        except (KeyError, ValueError):  # a run from before these tags: nothing to go on
            continue
        if process_alive(pid, run.tags.get(PID_START_TAG)):
            continue
        message = (
            f"orphaned_run: the style-pipeline process that ran it (pid {pid} on {host}) is "
            f"gone, killed before it could finish; marked failed by pid {os.getpid()}"
        )
        instance.report_run_failed(run, message=message)
        log.warning("run %s: %s", run.run_id, message)
        failed.append(run.run_id)
    return failed


def load_defs() -> dg.Definitions:
    from style_pipeline.definitions import defs

    return defs() if callable(defs) else defs


@dataclass(frozen=True)
class RunSummary:
    run_id: str
    success: bool
    partition_key: str
    materialized: list[str]
    failed_steps: list[str]
    orphans_failed: tuple[str, ...] = ()  # earlier CLI runs of killed processes, now FAILURE
    recorded: str | None = None  # the sensor-state record of the ingested set, when written


INGEST_ASSET = "raw_media"


def _drop_set_for(partition_key: str):
    """The date's file set in the drop folder, hashed as the sensor would (None: no files)."""
    from style_pipeline.media.dropfolder import scan_drop
    from style_pipeline.media.sensor_state import recorded_set
    from style_pipeline.settings import load_settings

    settings = load_settings()
    max_mb = settings.ingest.max_file_mb
    max_bytes = None if max_mb is None else int(max_mb * 1024 * 1024)
    return recorded_set(scan_drop(settings.drop_path()), partition_key, max_hash_bytes=max_bytes)


def record_ingested(recorded, run_id: str) -> str:
    """Write ``recorded`` (a ``RecordedSet``) into the hot-folder sensor's state; its key."""
    from style_pipeline.defs.sensors import SENSOR_NAME
    from style_pipeline.media.sensor_state import SensorStateStore
    from style_pipeline.settings import load_settings
    from style_pipeline.storage.store import Store

    states = SensorStateStore(Store(load_settings().storage_root()), SENSOR_NAME)
    return states.record(recorded.model_copy(update={"run_id": run_id}))


def materialize_partition(
    partition_key: str,
    select: str = "*",
    instance: dg.DagsterInstance | None = None,
    log_level: str = "INFO",
) -> RunSummary:
    """Materialize the assets matching ``select`` (Dagster selection syntax) for one date."""
    defs = load_defs()
    selection = dg.AssetSelection.from_string(select)
    if defs.assets is None:
        raise RuntimeError("the loaded definitions have no assets")
    assets: list[dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset] = []
    for item in [*defs.assets, *(defs.asset_checks or [])]:
        if not isinstance(item, dg.AssetsDefinition | dg.AssetSpec | dg.SourceAsset):
            raise TypeError(f"cannot materialize {type(item).__name__} {item!r}")
        assets.append(item)
    instance = instance or open_instance()
    orphans = fail_orphaned_runs(instance)
    ingests = dg.AssetKey(INGEST_ASSET) in selection.resolve(defs.resolve_asset_graph())
    # hashed before the run: a file dropped while it runs is left for the sensor
    drop_set = _drop_set_for(partition_key) if ingests else None
    result = dg.materialize(
        assets,
        instance=instance,
        resources=defs.resources,
        partition_key=partition_key,
        selection=selection,
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
        raise_on_error=False,
        tags=cli_run_tags(),
    )
    materialized = []
    for event in result.get_asset_materialization_events():
        if event.asset_key is None:  # a materialization event always names its asset
            raise RuntimeError(f"materialization event without an asset key: {event}")
        materialized.append(event.asset_key.to_user_string())
    materialized.sort()
    failed = [e.step_key for e in result.all_events if e.is_step_failure and e.step_key]
    recorded = None
    if drop_set is not None and INGEST_ASSET in materialized:
        recorded = record_ingested(drop_set, result.run_id)
    return RunSummary(
        result.run_id,
        result.success,
        partition_key,
        materialized,
        failed,
        tuple(orphans),
        recorded,
    )


def materialized_partitions(instance: dg.DagsterInstance | None = None) -> dict[str, set[str]]:
    """``{asset_key: {partition, ...}}`` of what has been materialized."""
    instance = instance or open_instance()
    out = {}
    for key in load_defs().resolve_all_asset_keys():
        out[key.to_user_string()] = set(instance.get_materialized_partitions(key))
    return out
