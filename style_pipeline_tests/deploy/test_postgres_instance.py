"""docker/dagster.yaml as the instance, on a real PostgreSQL server and an S3 (moto) bucket.

The file is copied as ``$DAGSTER_HOME/dagster.yaml`` with the ``DAGSTER_PG_*`` variables
pointing at the throw-away server (``conftest.py``) and the compute-log bucket on the moto
server; the instance is opened as the webserver and the daemon open it
(``DagsterInstance.get()``). The run launcher is built (no Docker engine needed) but not
used: runs execute in this process. The code location's definitions run an ingest for a
date, the hot-folder sensor is evaluated against the same instance, its request is run,
and the runs and materializations are read back through the instance and straight from
PostgreSQL's tables.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from pathlib import Path

import boto3
import dagster as dg
import pytest
from dagster_aws.s3.compute_log_manager import S3ComputeLogManager
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from PIL import Image

from style_pipeline.defs import sensors
from style_pipeline.defs.run import load_defs, materialize_partition
from style_pipeline.docker_launcher import TaggedDockerRunLauncher
from style_pipeline.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DOCKER_INSTANCE = ROOT / "docker" / "dagster.yaml"
DAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
LOG_PREFIX = "compute-logs"
NETWORK = "style_pipeline_test"


@pytest.fixture
def pg_instance(postgres_db, s3_root, monkeypatch, tmp_path):
    """docker/dagster.yaml opened from DAGSTER_HOME against the test's database and bucket."""
    for name, value in postgres_db.env().items():
        monkeypatch.setenv(name, value)
    bucket = s3_root.removeprefix("s3://").split("/", 1)[0]
    monkeypatch.setenv("DAGSTER_COMPUTE_LOGS_BUCKET", bucket)
    monkeypatch.setenv("DAGSTER_COMPUTE_LOGS_PREFIX", LOG_PREFIX)
    monkeypatch.setenv("DAGSTER_DOCKER_NETWORK", NETWORK)
    home = tmp_path / "dagster_home"
    shutil.copyfile(DOCKER_INSTANCE, home / "dagster.yaml")
    with dg.DagsterInstance.get() as instance:
        yield instance


@pytest.fixture
def clock(monkeypatch):
    """Every file the test writes has settled by the time the sensor looks."""
    monkeypatch.setattr(sensors, "now_epoch", lambda: time.time() + 3600)


def photo(name: str, colour: tuple[int, int, int]) -> None:
    path = load_settings().drop_path() / DAY / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 32), colour).save(path, quality=90)


def test_the_file_configures_postgres_s3_logs_the_queue_and_the_docker_launcher(pg_instance):
    assert isinstance(pg_instance.run_storage, PostgresRunStorage)
    assert isinstance(pg_instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(pg_instance.schedule_storage, PostgresScheduleStorage)
    assert isinstance(pg_instance.compute_log_manager, S3ComputeLogManager)
    assert isinstance(pg_instance.run_coordinator, dg.QueuedRunCoordinator)
    launcher = pg_instance.run_launcher
    assert isinstance(launcher, TaggedDockerRunLauncher)
    context = launcher.get_container_context(dg.DagsterRun(job_name="ingest_job"))
    assert context.networks == [NETWORK]
    assert context.container_kwargs == {"volumes": ["style_pipeline_data:/data"]}
    assert "DAGSTER_PG_PASSWORD" in context.env_vars
    assert "device_requests" not in context.container_kwargs  # GPUs only where a tag asks


def tick(defs: dg.Definitions, instance: dg.DagsterInstance, cursor: str | None):
    sensor = defs.resolve_sensor_def(sensors.SENSOR_NAME)
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=defs.resources)
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_ingest_and_sensor_runs_are_stored_in_postgres(pg_instance, postgres_db, clock):
    photo("a.jpg", (200, 0, 0))
    photo("b.jpg", (0, 200, 0))
    cli = materialize_partition(DAY, "group:ingest", instance=pg_instance)
    assert cli.success and cli.materialized == ["frames", "raw_media"]

    defs = load_defs()
    quiet = tick(defs, pg_instance, None)
    assert not quiet.run_requests  # the CLI run recorded its file set
    photo("c.jpg", (0, 0, 200))
    arrival = tick(defs, pg_instance, quiet.cursor)
    assert [r.partition_key for r in arrival.run_requests or []] == [DAY]
    request = (arrival.run_requests or [])[0]
    assert request.job_name == "ingest_job"
    # What the daemon would launch, run here for the ingest group only (no curation models).
    sensor_run = defs.resolve_job_def("ingest_group_job").execute_in_process(
        instance=pg_instance,
        partition_key=request.partition_key,
        tags={**request.tags, "dagster/run_key": request.run_key},
    )
    assert sensor_run.success

    runs = {r.run_id: r for r in pg_instance.get_runs()}
    assert set(runs) == {cli.run_id, sensor_run.run_id}
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs.values())
    assert runs[cli.run_id].tags["style_pipeline/trigger"] == "cli"
    assert runs[sensor_run.run_id].tags["style_pipeline/trigger"] == "hot_folder_sensor"
    assert runs[sensor_run.run_id].tags["dagster/partition"] == DAY

    records = pg_instance.fetch_materializations(dg.AssetKey("raw_media"), limit=10).records
    assert [(r.run_id, r.partition_key) for r in records] == [
        (sensor_run.run_id, DAY),
        (cli.run_id, DAY),
    ]
    latest = pg_instance.get_latest_materialization_event(dg.AssetKey("frames"))
    assert latest is not None and latest.run_id == sensor_run.run_id
    assert pg_instance.get_materialized_partitions(dg.AssetKey("frames")) == {DAY}

    # The rows are in PostgreSQL itself, and so are the schedule storage's tables.
    assert postgres_db.query("SELECT count(*) FROM runs") == [(2,)]
    assert postgres_db.query(
        "SELECT count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'"
    ) == [(4,)]
    tables = {t for (t,) in postgres_db.query("SELECT tablename FROM pg_tables")}
    assert {"runs", "event_logs", "instigators", "job_ticks"} <= tables


def test_step_logs_go_to_the_s3_bucket(pg_instance, s3_root):
    photo("a.jpg", (200, 0, 0))
    summary = materialize_partition(DAY, "raw_media", instance=pg_instance)
    assert summary.success
    bucket = s3_root.removeprefix("s3://").split("/", 1)[0]
    s3 = boto3.client("s3")
    keys = [
        o["Key"]
        for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{LOG_PREFIX}/").get("Contents", [])
    ]
    run_logs = [k for k in keys if summary.run_id in k]
    assert run_logs, f"no compute log of run {summary.run_id} under {LOG_PREFIX}/: {keys}"
