"""``hot_folder_sensor`` through ``build_sensor_context`` on a real drop folder in tmp_path.

Time is controlled by replacing ``sensors.now_epoch``; files get old mtimes with
``os.utime``. ``os.utime`` sets ``st_ctime`` to the real now and the arrival rule reads
``max(mtime, ctime)``, so files live in dated folders to pin their partition.
"""

from __future__ import annotations

import hashlib
import os
import time

import dagster as dg
import pytest

from style_pipeline.defs import sensors
from style_pipeline.defs.resources import DropFolderResource
from style_pipeline.media.hotfolder import decode_cursor, run_key_for, set_digest
from style_pipeline.settings import load_settings

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


def run_sensor(drop, cursor=None, settle=5.0, budget=30.0) -> dg.SensorResult:
    resource = DropFolderResource(path=str(drop), settle_seconds=settle, hash_budget_seconds=budget)
    context = dg.build_sensor_context(cursor=cursor, resources={"drop_folder": resource})
    result = sensors.hot_folder_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def keys(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests or []]


def expected_key(*contents: bytes) -> str:
    return run_key_for(DAY, set_digest(hashlib.sha256(c).hexdigest() for c in contents))


def test_sensor_is_wired_for_the_daemon():
    assert sensors.hot_folder_sensor.default_status == dg.DefaultSensorStatus.RUNNING
    interval = load_settings().sensor.minimum_interval_seconds
    assert sensors.hot_folder_sensor.minimum_interval_seconds == interval
    assert sensors.hot_folder_sensor.required_resource_keys == {"drop_folder"}


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
    assert decode_cursor(after.cursor) == decode_cursor(before.cursor)


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
    cursor, warning = decode_cursor(first.cursor)
    assert warning is None and len(cursor.files) == 2000
    assert all(state.sha256 for state in cursor.files.values())
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
        hashed = sum(s.sha256 is not None for s in decode_cursor(cursor)[0].files.values())
        results.append((hashed, keys(result)))
    assert results == [(1, []), (2, []), (3, [(DAY, expected_key(*contents))])]
