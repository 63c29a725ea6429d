"""Named jobs backfill through the Dagster CLI; a day's check result belongs to that day.

The backfill test runs ``dagster job backfill`` against ``workspace.yaml`` with a temp
DAGSTER_HOME using the project's dagster.yaml (QueuedRunCoordinator): the CLI creates the
backfill and one run per partition and queues them; launching them is the daemon's job,
which does not run in tests, so the test asserts the backfill, its partitions and the
queued runs of the named job.
"""

import shutil
import subprocess
import sys

import dagster as dg
import pytest
from dagster._core.event_api import PartitionKeyFilter
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from style_pipeline.demo.samples import make_photos
from style_pipeline.paths import PROJECT_ROOT
from style_pipeline.settings import load_settings
from style_pipeline_tests.conftest import materialize_day

pytestmark = pytest.mark.slow

DAYS = ("2026-11-14", "2026-11-15")


def test_cli_backfill_of_the_named_job_for_two_dates(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    dagster = str(PROJECT_ROOT / ".venv" / "bin" / "dagster")
    if not (PROJECT_ROOT / ".venv" / "bin" / "dagster").exists():
        dagster = shutil.which("dagster") or f"{sys.prefix}/bin/dagster"
    command = [dagster, "job", "backfill", "-w", "workspace.yaml", "-j", "ingest_job"]
    command += ["--partitions", ",".join(DAYS), "--noprompt"]
    done = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Launched backfill job" in done.stdout

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (backfill,) = instance.get_backfills()
        assert sorted(backfill.partition_names or []) == list(DAYS)
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        assert sorted(r.tags["dagster/partition"] for r in runs) == list(DAYS)
        assert {r.job_name for r in runs} == {"ingest_job"}
        assert {r.status for r in runs} == {dg.DagsterRunStatus.QUEUED}  # the daemon launches


def test_a_failed_check_shows_on_its_own_partition_only(tiny_models, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__MIN_CURATED_PER_DAY", "1")
    good, empty = DAYS
    make_photos(load_settings().drop_path() / good, 3, seed=3, size=(640, 480))
    key = dg.AssetCheckKey(dg.AssetKey("curated_frames"), "min_curated_count")
    with dg.instance_for_test() as instance:
        for day in DAYS:
            materialize_day(
                day, "group:ingest or group:curation", instance=instance, raise_on_error=False
            )
        storage = instance.event_log_storage

        def latest(day):
            by_key = storage.get_latest_asset_check_execution_by_key(
                [key], partition_filter=PartitionKeyFilter(key=day)
            )
            return by_key[key]

        assert latest(good).partition == good
        assert latest(good).status == AssetCheckExecutionRecordStatus.SUCCEEDED
        assert latest(empty).partition == empty
        assert latest(empty).status == AssetCheckExecutionRecordStatus.FAILED
        # the newest run (the empty day's failure) does not recolour the good day
        assert latest(good).status == AssetCheckExecutionRecordStatus.SUCCEEDED
