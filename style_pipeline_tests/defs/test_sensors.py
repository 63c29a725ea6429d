"""``hot_folder_sensor`` through ``build_sensor_context`` on a real drop folder in tmp_path.

Time is controlled by replacing ``sensors.now_epoch``; files get old mtimes with
``os.utime``. ``os.utime`` sets ``st_ctime`` to the real now and the arrival rule reads
``max(mtime, ctime)``, so files live in dated folders to pin their partition. The sensor's
state lives in a local storage root beside the drop folder; the cursor only names it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time

import dagster as dg
import pytest

from style_pipeline.defs import sensors
from style_pipeline.defs.resources import DropFolderResource, StorageResource
from style_pipeline.media.hotfolder import HotFolderState, run_key_for, set_digest
from style_pipeline.media.sensor_state import SensorStateStore
from style_pipeline.paths import PROJECT_ROOT
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store

DAY = "2026-01-05"
WEEK_AGO = time.time() - 7 * 86_400


@pytest.fixture
def drop(tmp_path):
    return tmp_path / "drop"


@pytest.fixture
def clock(monkeypatch):
    """The sensor's wall clock, a minute after the real now.

    File ctimes are real, so files written by a test are past any settle time unless the
    test sets the clock back to ``time.time()``.
    """
    state = {"now": time.time() + 60}
    monkeypatch.setattr(sensors, "now_epoch", lambda: state["now"])
    return state


def put(drop, rel: str, data: bytes, mtime: float | None = WEEK_AGO):
    path = drop / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def storage_of(drop) -> str:
    return str(drop.parent / "storage")


def run_sensor(drop, cursor=None, settle=5.0, budget=30.0, storage=None) -> dg.SensorResult:
    resources = {
        "drop_folder": DropFolderResource(
            path=str(drop), settle_seconds=settle, hash_budget_seconds=budget
        ),
        "storage": StorageResource(root=storage or storage_of(drop)),
    }
    context = dg.build_sensor_context(cursor=cursor, resources=resources)
    result = sensors.hot_folder_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def state_of(drop, cursor: str | None) -> HotFolderState:
    loaded = SensorStateStore(Store(storage_of(drop)), sensors.SENSOR_NAME).load(cursor)
    assert loaded.warnings == [] or cursor is None
    return loaded.state


def keys(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests or []]


def expected_key(*contents: bytes) -> str:
    return run_key_for(DAY, set_digest(hashlib.sha256(c).hexdigest() for c in contents))


def test_sensor_is_wired_for_the_daemon():
    assert sensors.hot_folder_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    interval = load_settings().sensor.minimum_interval_seconds
    assert sensors.hot_folder_sensor.minimum_interval_seconds == interval
    assert sensors.hot_folder_sensor.required_resource_keys == {"drop_folder", "storage"}
    assert sensors.hot_folder_sensor.job_name == "ingest_job"  # runs named, not anonymous


def test_empty_drop_folder_skips(drop, clock):
    result = run_sensor(drop)
    assert result.run_requests in (None, [])
    assert "empty" in result.skip_reason.skip_message


def test_file_still_being_copied_waits_until_settled(drop, clock):
    clock["now"] = time.time()
    path = put(drop, f"{DAY}/clip.mp4", b"first half", mtime=None)  # being written right now
    first = run_sensor(drop)
    assert keys(first) == [] and "settling" in first.skip_reason.skip_message
    with path.open("ab") as f:
        f.write(b" and second half")
    clock["now"] += 3
    second = run_sensor(drop, first.cursor)
    assert keys(second) == []  # size/mtime changed: the settle clock restarted
    clock["now"] += 5
    third = run_sensor(drop, second.cursor)
    assert keys(third) == [(DAY, expected_key(b"first half and second half"))]


def test_dated_subfolder_gives_its_partition(drop, clock):
    put(drop, f"{DAY}/x.jpg", b"x")
    result = run_sensor(drop)
    assert keys(result) == [(DAY, expected_key(b"x"))]
    tags = result.run_requests[0].tags
    assert tags["style_pipeline/files"] == "1" and tags["style_pipeline/trigger"]
    assert result.run_requests[0].job_name == "ingest_job"


def test_duplicate_content_under_two_names_is_one_request(drop, clock):
    put(drop, f"{DAY}/a.jpg", b"same bytes")
    put(drop, f"{DAY}/copy of a.jpg", b"same bytes")
    first = run_sensor(drop)
    assert keys(first) == [(DAY, expected_key(b"same bytes"))]
    assert first.run_requests[0].tags["style_pipeline/files"] == "2"
    assert keys(run_sensor(drop, first.cursor)) == []


def test_same_name_with_new_content_is_a_new_request(drop, clock):
    put(drop, f"{DAY}/a.jpg", b"version 1")
    first = run_sensor(drop)
    ctime_before = (drop / DAY / "a.jpg").stat().st_ctime_ns
    time.sleep(0.05)  # ctime ticks with the kernel's coarse clock; real rewrites are further apart
    put(drop, f"{DAY}/a.jpg", b"version 2")  # same size, same old mtime restored
    assert (drop / DAY / "a.jpg").stat().st_ctime_ns != ctime_before
    clock["now"] += 10
    second = run_sensor(drop, first.cursor)
    assert keys(first) == [(DAY, expected_key(b"version 1"))]
    assert keys(second) == [(DAY, expected_key(b"version 2"))]


@pytest.mark.parametrize("restart_cursor", [None, "", "{definitely not json", '{"version": 9}'])
def test_restart_with_lost_or_corrupted_cursor_repeats_the_run_key(drop, clock, restart_cursor):
    put(drop, f"{DAY}/a.jpg", b"a")
    put(drop, "2026-01-06/b.jpg", b"b")
    before = run_sensor(drop)
    after = run_sensor(drop, restart_cursor)
    assert len(keys(before)) == 2
    assert keys(after) == keys(before)  # same run keys: Dagster drops the duplicates
    assert state_of(drop, after.cursor) == state_of(drop, before.cursor)


def test_file_with_mtime_older_than_the_last_tick_is_not_lost(drop, clock):
    put(drop, f"{DAY}/a.jpg", b"a")
    first = run_sensor(drop)
    put(drop, f"{DAY}/b.jpg", b"b", mtime=WEEK_AGO - 30 * 86_400)  # a `cp -p` of an old file
    clock["now"] += 30
    second = run_sensor(drop, first.cursor)
    assert keys(second) == [(DAY, expected_key(b"a", b"b"))]
    assert second.run_requests[0].tags["style_pipeline/files"] == "2"


def test_two_thousand_files_in_one_tick(drop, clock):
    contents = [f"image {i}".encode() for i in range(2000)]
    for i, data in enumerate(contents):
        put(drop, f"{DAY}/img_{i:04d}.jpg", data)
    first = run_sensor(drop)
    assert keys(first) == [(DAY, expected_key(*contents))]
    assert first.run_requests[0].tags["style_pipeline/files"] == "2000"
    state = state_of(drop, first.cursor)
    assert len(state.files) == 2000 and all(f.sha256 for f in state.files.values())
    second = run_sensor(drop, first.cursor)
    assert keys(second) == [] and second.skip_reason.skip_message == "no new file sets"


def test_hash_budget_exhaustion_continues_next_tick(drop, clock):
    contents = [b"one", b"two", b"three"]
    for i, data in enumerate(contents):
        put(drop, f"{DAY}/{i}.jpg", data)
    cursor, results = None, []
    for _ in range(3):  # a 1 ns budget: exactly one file is hashed per tick
        result = run_sensor(drop, cursor, budget=1e-9)
        cursor = result.cursor
        hashed = sum(s.sha256 is not None for s in state_of(drop, cursor).files.values())
        results.append((hashed, keys(result)))
    assert results == [(1, []), (2, []), (3, [(DAY, expected_key(*contents))])]


def logged(capfd) -> list[str]:
    """The sensor's log lines (its context logger writes to the console, not to caplog)."""
    return [line.split(" - ", 3)[-1] for line in capfd.readouterr().err.splitlines()]


def cursor_bytes(result: dg.SensorResult) -> int:
    assert result.cursor is not None
    return len(result.cursor.encode())


@pytest.mark.parametrize("n_files", [1, 3000])
def test_cursor_stays_under_a_kilobyte_whatever_the_file_count(drop, clock, n_files, capfd):
    # Before issue 17 the cursor held every file's state: 784,117 bytes for 5,000 files,
    # stored again in every tick row.
    for i in range(n_files):
        put(drop, f"{DAY}/img_{i:05d}.jpg", b"")  # empty files: the count is what matters
    first = run_sensor(drop)
    assert cursor_bytes(first) < 1024
    assert first.run_requests[0].tags["style_pipeline/files"] == str(n_files)
    assert len(state_of(drop, first.cursor).files) == n_files
    size_lines = [line for line in logged(capfd) if line.startswith("cursor ")]
    assert size_lines and size_lines[0].startswith(f"cursor {cursor_bytes(first)} bytes")
    assert f"{n_files} files" in size_lines[0]
    second = run_sensor(drop, first.cursor)
    assert second.cursor == first.cursor and keys(second) == []  # nothing changed


def test_version_one_cursor_is_migrated_without_requesting_again(drop, clock, capfd):
    put(drop, f"{DAY}/a.jpg", b"a")
    st = (drop / DAY / "a.jpg").stat()
    digest = hashlib.sha256(b"a").hexdigest()
    legacy = json.dumps(  # the cursor as the sensor wrote it before issue 17
        {
            "version": 1,
            "files": {f"{DAY}/a.jpg": [1, st.st_mtime_ns, st.st_ctime_ns, 1.0e9, digest]},
            "requested": {DAY: set_digest([digest])},
        }
    )
    result = run_sensor(drop, legacy)
    assert keys(result) == [] and result.skip_reason.skip_message == "no new file sets"
    assert any(line.startswith("migrated a version-1 cursor") for line in logged(capfd))
    assert cursor_bytes(result) < 200
    assert state_of(drop, result.cursor).requested == {DAY: set_digest([digest])}


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_lost_state_snapshot_starts_over_with_the_same_run_keys(drop, clock, damage, capfd):
    put(drop, f"{DAY}/a.jpg", b"a")
    first = run_sensor(drop)
    state_dir = drop.parent / "storage" / "raw_media" / "sensor" / sensors.SENSOR_NAME
    (snapshot,) = state_dir.iterdir()
    if damage == "delete":
        snapshot.unlink()
    else:
        snapshot.write_bytes(snapshot.read_bytes()[:10])
    again = run_sensor(drop, first.cursor)
    assert keys(again) == keys(first)  # same run key: Dagster skips the repeated request
    assert any("starting from an empty state" in line for line in logged(capfd))
    assert keys(run_sensor(drop, again.cursor)) == []


def test_unusable_storage_skips_the_tick_and_keeps_the_cursor(drop, clock, tmp_path, capfd):
    put(drop, f"{DAY}/a.jpg", b"a")
    blocker = tmp_path / "storage-is-a-file"
    blocker.write_bytes(b"")
    result = run_sensor(drop, storage=str(blocker))
    assert keys(result) == [] and result.cursor is None  # None: Dagster keeps the old cursor
    assert result.skip_reason.skip_message.startswith("storage_unavailable: could not write")
    assert any(line.startswith("storage_unavailable") for line in logged(capfd))
    good = run_sensor(drop)
    cursor = good.cursor
    assert keys(good) == [(DAY, expected_key(b"a"))]
    failed = run_sensor(drop, cursor, storage=str(blocker))  # the named snapshot is unreachable
    assert failed.cursor is None and "could not read" in failed.skip_reason.skip_message


def test_instance_purges_old_ticks(tmp_path):
    shutil.copyfile(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    instance = dg.DagsterInstance.from_config(str(tmp_path))  # validates the whole file
    try:
        retention = instance.get_settings("retention")
    finally:
        instance.dispose()
    sensor_days = retention["sensor"]["purge_after_days"]
    assert 0 < sensor_days["skipped"] <= 7
    assert all(sensor_days[status] > 0 for status in ("success", "failure"))
    assert retention["schedule"]["purge_after_days"] > 0
