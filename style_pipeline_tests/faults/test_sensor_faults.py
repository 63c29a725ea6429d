"""The hot-folder sensor against a corrupted cursor and a file still being written.

Written against public behaviour only (the run requests a tick returns and their run
keys), through ``build_sensor_context`` as in ``defs/test_sensors.py``, whose helpers wire
the sensor's resources.
"""

from __future__ import annotations

import time

import pytest

from style_pipeline_tests.defs.test_sensors import DAY, expected_key, keys, put, run_sensor

OTHER_DAY = "2026-01-06"
READY = 0.0  # settle time for the cursor tests: files are stable as soon as they are seen


@pytest.fixture
def drop(tmp_path):
    return tmp_path / "drop"


def corrupted_cursors(valid: str) -> dict[str, str]:
    return {
        "garbage": "garbage...\x00\xff not a cursor at all",
        "truncated_json": valid[: len(valid) // 2],
        "json_of_the_wrong_shape": '{"version": 2, "index": 42}',
    }


@pytest.mark.parametrize("damage", ["garbage", "truncated_json", "json_of_the_wrong_shape"])
def test_corrupted_cursor_is_survived_and_requests_each_set_once(drop, damage):
    put(drop, f"{DAY}/a.jpg", b"a")
    put(drop, f"{DAY}/b.jpg", b"b")
    put(drop, f"{OTHER_DAY}/c.jpg", b"c")
    first = run_sensor(drop, settle=READY)
    wanted = {(DAY, expected_key(b"a", b"b"))}
    assert wanted <= set(keys(first)) and len(keys(first)) == 2
    assert first.cursor

    damaged = corrupted_cursors(first.cursor)[damage]
    after = run_sensor(drop, damaged, settle=READY)  # must not raise
    # Whatever it asks again carries the same run keys, which Dagster drops as repeats.
    assert set(keys(after)) <= set(keys(first))
    again = run_sensor(drop, after.cursor, settle=READY)
    assert keys(again) == []  # the returned cursor is usable: no set is requested twice
    assert again.cursor


@pytest.mark.parametrize("damage", ["garbage", "truncated_json"])
def test_corrupted_cursor_on_a_first_tick_requests_once(drop, damage):
    put(drop, f"{DAY}/a.jpg", b"a")
    valid_looking = '{"version": 2, "index": "' + "0" * 64 + '", "files": 1}'
    first = run_sensor(drop, corrupted_cursors(valid_looking)[damage], settle=READY)
    assert keys(first) == [(DAY, expected_key(b"a"))]
    assert keys(run_sensor(drop, first.cursor, settle=READY)) == []


def test_file_growing_across_ticks_is_requested_once_after_it_settles(drop):
    """Real clocks: a copy appends every 0.2 s, the sensor ticks after each append."""
    settle = 1.5
    path = drop / DAY / "clip.mp4"
    path.parent.mkdir(parents=True)
    chunks = [b"part one,", b" part two,", b" part three"]
    ticks, cursor = [], None
    for chunk in chunks:
        with path.open("ab") as f:
            f.write(chunk)
        result = run_sensor(drop, cursor, settle=settle)
        ticks.append(keys(result))
        cursor = result.cursor
        time.sleep(0.2)
    assert ticks == [[], [], []]  # still growing: never requested, not even its first part

    time.sleep(settle)  # the copy finished; nothing changes for longer than the settle time
    settled = run_sensor(drop, cursor, settle=settle)
    assert keys(settled) == [(DAY, expected_key(b"".join(chunks)))]
    later = run_sensor(drop, settled.cursor, settle=settle)
    assert keys(later) == []  # requested exactly once
