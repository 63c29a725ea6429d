"""The ``style-pipeline`` CLI: drop, materialize, status, and runs of killed processes."""

import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time

import dagster as dg
from PIL import Image
from typer.testing import CliRunner

from style_pipeline.cli import app
from style_pipeline.defs.run import (
    cli_run_tags,
    ensure_dagster_home,
    fail_orphaned_runs,
    process_alive,
)
from style_pipeline.settings import load_settings

runner = CliRunner()


def test_drop_copies_into_dated_folder_without_overwriting(tmp_path):
    src = tmp_path / "photo one.jpg"
    Image.new("RGB", (32, 32), (1, 2, 3)).save(src)
    for _ in range(2):
        result = runner.invoke(app, ["drop", str(src), "--date", "2026-11-02"])
        assert result.exit_code == 0, result.output
    target = load_settings().drop_path() / "2026-11-02"
    assert sorted(p.name for p in target.iterdir()) == ["photo one-1.jpg", "photo one.jpg"]
    assert (target / "photo one.jpg").read_bytes() == src.read_bytes()


def test_drop_rejects_bad_date(tmp_path):
    src = tmp_path / "a.jpg"
    src.write_bytes(b"x")
    result = runner.invoke(app, ["drop", str(src), "--date", "2026-13-01"])
    assert result.exit_code != 0
    assert "YYYY-MM-DD" in result.output


def test_materialize_then_status(tmp_path):
    day = "2026-11-03"
    src = tmp_path / "a.jpg"
    Image.new("RGB", (48, 32), (200, 0, 0)).save(src)
    assert runner.invoke(app, ["drop", str(src), "--date", day]).exit_code == 0
    result = runner.invoke(app, ["materialize", "--date", day, "--select", "group:ingest"])
    assert result.exit_code == 0, result.output
    assert "raw_media" in result.output and "frames" in result.output
    status = runner.invoke(app, ["status"])
    assert status.exit_code == 0
    assert day in status.output
    line = next(x for x in status.output.splitlines() if day in x)
    assert "2/" in line and "raw_media" not in line


def test_status_when_nothing_materialized():
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0
    assert "nothing materialized yet" in result.output


def test_today_is_utc():
    from style_pipeline.cli import _today

    assert _today() == dt.datetime.now(dt.UTC).date().isoformat()


def test_train_refuses_an_invalid_preset(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\nrank: -3\n")
    result = runner.invoke(app, ["train", "--config", str(bad), "--date", "2026-11-03"])
    assert result.exit_code != 0
    assert "rank" in str(result.exception) or "rank" in result.output


def test_train_without_captions_fails_with_a_clear_reason(tmp_path, tiny_models):
    preset = load_settings().training  # the tiny preset file ships with the project
    assert preset.preset == "tiny"
    from style_pipeline.paths import PROJECT_ROOT

    result = runner.invoke(
        app,
        [
            "train",
            "--config",
            str(PROJECT_ROOT / "configs/presets/tiny.yml"),
            "--date",
            "2026-11-04",
        ],
    )
    assert result.exit_code == 1
    assert "no LoRA trained for 2026-11-04" in result.output
    assert "no captions in its training window" in result.output


KILLED_RUN = """
import time
import dagster as dg
from style_pipeline.defs.run import cli_run_tags

@dg.asset
def slow():
    time.sleep(300)

dg.materialize([slow], instance=dg.DagsterInstance.get(), tags=cli_run_tags())
"""


def _started_runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])))


def test_a_cli_run_killed_with_sigkill_is_failed_on_the_next_start():
    ensure_dagster_home()
    child = subprocess.Popen([sys.executable, "-c", KILLED_RUN], env=dict(os.environ))
    instance = dg.DagsterInstance.get()
    deadline = time.monotonic() + 120
    while not (started := _started_runs(instance)):
        assert child.poll() is None and time.monotonic() < deadline, "the run never started"
        time.sleep(0.2)
    [run] = started
    assert run.tags["style_pipeline/pid"] == str(child.pid)
    assert fail_orphaned_runs(instance) == []  # its process is alive: left alone
    child.send_signal(signal.SIGKILL)
    child.wait(30)  # reaped: the pid is dead, not a zombie
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    assert fail_orphaned_runs(instance, host="another-host") == []  # not this host's pids

    result = runner.invoke(app, ["materialize", "--date", "2026-11-05", "--select", "raw_media"])
    assert result.exit_code == 0, result.output
    assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
    [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
    assert f"pid {child.pid} on {socket.gethostname()}" in failure.dagster_event.message
    assert "orphaned_run" in failure.dagster_event.message
    assert _started_runs(instance) == []


def test_process_alive_tells_dead_reused_and_live_pids_apart():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not process_alive(child.pid)
    me = cli_run_tags()
    assert process_alive(os.getpid(), me.get("style_pipeline/pid_start"))
    if "style_pipeline/pid_start" in me:  # /proc is there: a reused pid is told apart
        assert not process_alive(os.getpid(), "1")
