"""A CLI / demo run of ``raw_media`` records its file set, so the sensor does not redo it.

The run goes through ``materialize_partition`` (what ``style-pipeline demo`` and
``materialize`` use); the sensor is then evaluated with ``build_sensor_context`` over the
same drop folder and storage root, with no cursor (as on a first ``dagster dev``).
"""

from __future__ import annotations

import datetime as dt
import time

import dagster as dg
import pytest
from PIL import Image

from style_pipeline.defs import sensors
from style_pipeline.defs.resources import DropFolderResource, StorageResource
from style_pipeline.defs.run import materialize_partition
from style_pipeline.media.dropfolder import scan_drop
from style_pipeline.media.sensor_state import SensorStateStore, recorded_set
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store

DAY = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)).isoformat()


@pytest.fixture
def clock(monkeypatch):
    state = {"now": time.time() + 60}  # every file written by the test has settled
    monkeypatch.setattr(sensors, "now_epoch", lambda: state["now"])
    return state


def photo(name: str, colour: tuple[int, int, int], day: str = DAY):
    path = load_settings().drop_path() / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (48, 32), colour).save(path)
    return path


def tick(cursor: str | None = None) -> dg.SensorResult:
    settings = load_settings()
    resources = {
        "drop_folder": DropFolderResource(path=str(settings.drop_path()), settle_seconds=5.0),
        "storage": StorageResource(root=settings.storage_root()),
    }
    result = sensors.hot_folder_sensor(dg.build_sensor_context(cursor=cursor, resources=resources))
    assert isinstance(result, dg.SensorResult)
    return result


def requests(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests or []]


def states() -> SensorStateStore:
    return SensorStateStore(Store(load_settings().storage_root()), sensors.SENSOR_NAME)


def test_sensor_after_a_cli_ingest_requests_nothing_until_a_new_file_arrives(clock, instance):
    photo("a.jpg", (200, 0, 0))
    photo("b.jpg", (0, 200, 0))
    summary = materialize_partition(DAY, "raw_media", instance=instance)
    assert summary.success and summary.materialized == ["raw_media"]
    assert summary.recorded == states().record_key(DAY)

    first = tick()
    assert requests(first) == []
    assert first.skip_reason is not None
    assert "no new file sets" in first.skip_reason.skip_message
    assert tick(first.cursor).run_requests in (None, [])  # and stays quiet
    assert states().store.list(states().records_prefix) == []  # settled, then deleted

    photo("c.jpg", (0, 0, 200))
    after = tick(first.cursor)
    expected = recorded_set(scan_drop(load_settings().drop_path()), DAY)
    assert expected is not None
    assert requests(after) == [(DAY, expected.run_key)]


def test_the_record_uses_the_run_key_the_sensor_would_use(clock):
    photo("a.jpg", (200, 0, 0))
    photo("b.jpg", (0, 200, 0))
    alone = tick()  # the sensor on its own, nothing recorded
    recorded = recorded_set(scan_drop(load_settings().drop_path()), DAY)
    assert recorded is not None
    assert requests(alone) == [(DAY, recorded.run_key)]
    assert recorded_set(scan_drop(load_settings().drop_path()), "2020-01-01") is None


def test_a_record_merged_by_a_tick_that_failed_is_merged_again(clock):
    photo("a.jpg", (200, 0, 0))
    recorded = recorded_set(scan_drop(load_settings().drop_path()), DAY)
    assert recorded is not None
    states().record(recorded)
    lost = tick()  # its cursor is never committed (the tick failed after saving)
    assert requests(lost) == []
    again = tick(None)
    assert requests(again) == []
    assert states().store.list(states().records_prefix) == [states().record_key(DAY)]


def test_an_unreadable_record_is_ignored_with_a_warning(clock):
    photo("a.jpg", (200, 0, 0))
    store = states()
    store.store.put_bytes(b"{not json", store.record_key(DAY))
    loaded = store.load(None)
    assert any("unreadable" in w for w in loaded.warnings)
    assert len(requests(tick())) == 1
