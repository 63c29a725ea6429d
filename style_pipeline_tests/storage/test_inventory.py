"""storage.inventory: recursive listing with sizes and write times; batch delete."""

from __future__ import annotations

import datetime as dt

import pytest

from style_pipeline.storage import inventory
from style_pipeline.storage.inventory import delete_keys, list_files
from style_pipeline.storage.store import Store

KEYS = ["frames/2026-01-01.parquet", "frames/2026-01-01/a.jpg", "frames/2026-01-01/sub/b.jpg"]


@pytest.fixture(params=["local", "memory", "s3"])
def store(request, tmp_path) -> Store:
    if request.param == "local":
        return Store(tmp_path / "storage")
    if request.param == "memory":
        return Store(f"memory://inventory-{tmp_path.name}/root")
    return Store(request.getfixturevalue("s3_root"))


def test_lists_every_file_with_size_and_write_time(store):
    for n, key in enumerate(KEYS):
        store.put_bytes(b"x" * (n + 1), key)
    store.put_bytes(b"x", "other/file.txt")
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    files = list_files(store, "frames")
    assert [f.key for f in files] == KEYS
    assert [f.size for f in files] == [1, 2, 3]
    assert all(f.modified is not None and f.modified > before for f in files)
    assert all(f.modified.tzinfo is not None for f in files if f.modified)
    assert list_files(store, "frames/2026-01-01/sub") == files[2:]
    assert list_files(store, "missing") == []


def test_writes_in_progress_are_not_listed(tmp_path):
    store = Store(tmp_path / "storage")
    store.put_bytes(b"x", "caches/a.json")
    (tmp_path / "storage" / "caches" / ".a.json.host-1-ab.tmp").write_bytes(b"partial")
    assert [f.key for f in list_files(store, "caches")] == ["caches/a.json"]


def test_delete_keys_ignores_missing_ones(store):
    for key in KEYS:
        store.put_bytes(b"x", key)
    assert delete_keys(store, [*KEYS[1:], "frames/2026-01-01/never.jpg"]) == 3
    assert [f.key for f in list_files(store, "frames")] == KEYS[:1]


def test_local_folders_left_empty_go_unless_asked_to_stay(tmp_path):
    store = Store(tmp_path / "storage")
    for key in KEYS:
        store.put_bytes(b"x", key)
    delete_keys(store, KEYS[1:])
    assert not (tmp_path / "storage" / "frames" / "2026-01-01").exists()
    assert (tmp_path / "storage" / "frames").is_dir()  # still holds the table
    store.put_bytes(b"x", "cache/ab/entry.npy")
    delete_keys(store, ["cache/ab/entry.npy"], remove_empty_folders=False)
    assert (tmp_path / "storage" / "cache" / "ab").is_dir()


def test_s3_deletes_in_batches(s3_root, monkeypatch):
    monkeypatch.setattr(inventory, "_BATCH", 2)
    store = Store(s3_root)
    keys = [f"caches/{n}.json" for n in range(5)]
    for key in keys:
        store.put_bytes(b"x", key)
    assert delete_keys(store, keys) == 5
    assert list_files(store, "caches") == []
