"""The hot-folder sensor's state snapshots in a local Store and the small cursor naming them."""

from __future__ import annotations

import gzip
import hashlib
import json

import pytest

from style_pipeline.media.hotfolder import FileState, HotFolderState
from style_pipeline.media.sensor_state import (
    SensorCursor,
    SensorStateStore,
    decode_snapshot,
    encode_snapshot,
)
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

SENSOR = "hot_folder_sensor"


def sha(label: str) -> str:
    return hashlib.sha256(label.encode()).hexdigest()


SHA = sha("content")


def cursor_json(**fields) -> str:
    return json.dumps({"v": 2, "gen": 1, "index": SHA, "files": 0} | fields)


def state_with(n: int, day: str = "2026-01-05") -> HotFolderState:
    files = {
        f"{day}/img_{i:05d}.jpg": FileState(
            size=i, mtime_ns=i, ctime_ns=i, first_seen=1.5, sha256=sha(str(i))
        )
        for i in range(n)
    }
    return HotFolderState(files=files, requested={day: SHA})


@pytest.fixture
def states(tmp_path) -> SensorStateStore:
    return SensorStateStore(Store(str(tmp_path / "storage")), SENSOR)


def snapshot_keys(states: SensorStateStore) -> list[str]:
    return states.store.list(states.prefix)


def test_snapshot_bytes_are_deterministic_and_round_trip():
    state = state_with(3)
    assert encode_snapshot(state) == encode_snapshot(state_with(3))
    assert decode_snapshot(encode_snapshot(state)) == state


@pytest.mark.parametrize("n_files", [0, 1, 5_000])
def test_cursor_size_does_not_grow_with_the_file_count(states, n_files):
    saved = states.save(state_with(n_files), None)
    assert len(saved.cursor_text.encode()) < 200
    assert saved.cursor.files == n_files and saved.written
    loaded = states.load(saved.cursor_text)
    assert loaded.state == state_with(n_files) and loaded.warnings == []


def test_unchanged_state_writes_nothing_and_keeps_the_generation(states):
    first = states.save(state_with(2), None)
    second = states.save(states.load(first.cursor_text).state, first.cursor)
    assert second.cursor_text == first.cursor_text and not second.written
    third = states.save(state_with(3), second.cursor)
    assert third.written and third.cursor.gen == first.cursor.gen + 1


def test_only_the_committed_and_the_new_snapshot_are_kept(states):
    a = states.save(state_with(1), None)
    b = states.save(state_with(2), a.cursor)
    assert sorted(snapshot_keys(states)) == sorted([a.key, b.key])  # a: still committed
    c = states.save(state_with(3), b.cursor)
    assert sorted(snapshot_keys(states)) == sorted([b.key, c.key]) and c.pruned == 1
    # a tick that failed after writing c re-plans from b: c is reused, b kept
    again = states.save(state_with(3), b.cursor)
    assert again.key == c.key and sorted(snapshot_keys(states)) == sorted([b.key, c.key])


def test_version_one_cursor_is_migrated_with_its_requested_sets(states):
    old = state_with(4)
    legacy_text = old.model_dump_json()  # the version-1 cursor held the whole state inline
    assert json.loads(legacy_text)["version"] == 1
    loaded = states.load(legacy_text)
    assert loaded.migrated and loaded.state == old and loaded.cursor is None
    assert "migrated a version-1 cursor (4 files" in loaded.warnings[0]


@pytest.mark.parametrize(
    "text",
    [
        "not json{",
        "null",
        "[]",
        cursor_json(v=3),
        cursor_json(gen=-1),
        cursor_json(index="../../etc/passwd"),
        cursor_json(extra=1),
        '{"version": 1, "files": {"a": [1, 2]}, "requested": {}}',
        '{"version": 1, "files": {"a": [1, 2, 3, 4.0, "nothex"]}, "requested": {}}',
    ],
)
def test_corrupted_cursor_starts_over_with_a_warning(states, text):
    loaded = states.load(text)
    assert loaded.state == HotFolderState() and loaded.cursor is None
    assert len(loaded.warnings) == 1 and "starting from an empty state" in loaded.warnings[0]


@pytest.mark.parametrize("text", [None, ""])
def test_no_cursor_is_an_empty_state_without_warning(states, text):
    loaded = states.load(text)
    assert loaded.state == HotFolderState() and loaded.warnings == []


def test_missing_snapshot_starts_over(states):
    text = SensorCursor(gen=4, index=SHA, files=9).model_dump_json()
    loaded = states.load(text)
    assert loaded.state == HotFolderState()
    assert "is missing" in loaded.warnings[0]


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda blob: blob[:-5], "does not match its digest"),
        (lambda blob: b"garbage", "does not match its digest"),
    ],
)
def test_damaged_snapshot_starts_over(states, damage, reason):
    saved = states.save(state_with(2), None)
    path = states.store.local_path(saved.key)
    path.write_bytes(damage(path.read_bytes()))
    loaded = states.load(saved.cursor_text)
    assert loaded.state == HotFolderState() and reason in loaded.warnings[0]


def test_a_snapshot_with_the_right_digest_but_bad_content_starts_over(states):
    blob = gzip.compress(b'{"version": 7}', mtime=0)
    digest = hashlib.sha256(blob).hexdigest()
    states.store.put_bytes(blob, layout.sensor_state_key(SENSOR, digest))
    loaded = states.load(SensorCursor(gen=1, index=digest, files=0).model_dump_json())
    assert loaded.state == HotFolderState() and "unreadable" in loaded.warnings[0]


def test_unusable_storage_raises_instead_of_starting_over(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    states = SensorStateStore(Store(str(blocker)), SENSOR)
    with pytest.raises(OSError):
        states.load(SensorCursor(gen=1, index=SHA, files=0).model_dump_json())
    with pytest.raises(OSError):
        states.save(state_with(1), None)


@pytest.mark.parametrize(
    ("sensor", "digest"), [("a/b", SHA), ("..", SHA), ("ok", "ABC"), ("ok", "../" + SHA[3:])]
)
def test_layout_rejects_unsafe_sensor_names_and_digests(sensor, digest):
    with pytest.raises(ValueError):
        layout.sensor_state_key(sensor, digest)


def test_layout_parses_back_only_snapshot_keys():
    key = layout.sensor_state_key(SENSOR, SHA)
    assert key == f"raw_media/sensor/{SENSOR}/{SHA}.json.gz"
    assert layout.sensor_state_digest_of(key, SENSOR) == SHA
    assert layout.sensor_state_digest_of(f"raw_media/sensor/{SENSOR}/.x.tmp", SENSOR) is None
    assert layout.sensor_state_digest_of(f"raw_media/sensor/other/{SHA}.json.gz", SENSOR) is None
