import datetime as dt
import json
import uuid

import pytest

from style_pipeline.media.ledger import ChecksumLedger
from style_pipeline.storage.store import Store

SHA = "ab" * 32
OTHER = "cd" * 32
D1, D2, D3 = dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)


@pytest.fixture(params=["local", "memory"])
def store(request, tmp_path):
    if request.param == "local":
        return Store(str(tmp_path / "storage"))
    return Store(f"memory://ledger-{uuid.uuid4().hex}")


def _record(ledger, day, name="a.jpg", sha=SHA):
    return ledger.record(sha, day, name, 10, "image", ".jpg", f"raw_media/objects/ab/{sha}.jpg")


def test_record_writes_one_object_per_sha_and_date(store):
    ledger = ChecksumLedger(store)
    assert _record(ledger, D2) is True
    key = f"raw_media/ledger/{SHA}/2026-01-02.json"
    assert store.list(f"raw_media/ledger/{SHA}") == [key]
    assert json.loads(store.read_bytes(key)) == {
        "sha256": SHA,
        "partition": "2026-01-02",
        "source_name": "a.jpg",
        "size_bytes": 10,
        "kind": "image",
        "extension": ".jpg",
        "object_path": f"raw_media/objects/ab/{SHA}.jpg",
    }


def test_record_is_idempotent_and_immutable(store):
    ledger = ChecksumLedger(store)
    _record(ledger, D1, "first.jpg")
    before = store.read_bytes(ledger.key(SHA, D1))
    assert _record(ledger, D1, "renamed.jpg") is False
    assert store.read_bytes(ledger.key(SHA, D1)) == before
    assert ledger.earliest(SHA) == (D1, "first.jpg")


def test_partitions_sorted_and_earliest(store):
    ledger = ChecksumLedger(store)
    _record(ledger, D3, "c.jpg")
    _record(ledger, D1, "a.jpg")
    _record(ledger, D2, "b.jpg")
    _record(ledger, D2, "x.jpg", sha=OTHER)
    assert ledger.partitions(SHA) == [D1, D2, D3]
    assert ledger.partitions(OTHER) == [D2]
    assert ledger.earliest(SHA) == (D1, "a.jpg")
    assert ledger.entry(SHA, D3).source_name == "c.jpg"


@pytest.mark.parametrize(
    ("before", "expected"),
    [(D1, None), (D2, (D1, "a.jpg")), (D3, (D1, "a.jpg")), (None, (D1, "a.jpg"))],
)
def test_earliest_before_only_counts_strictly_earlier_dates(store, before, expected):
    ledger = ChecksumLedger(store)
    _record(ledger, D1, "a.jpg")
    _record(ledger, D2, "b.jpg")
    assert ledger.earliest(SHA, before=before) == expected


def test_unknown_sha_has_no_partitions(store):
    ledger = ChecksumLedger(store)
    assert ledger.partitions(SHA) == []
    assert ledger.earliest(SHA) is None
    with pytest.raises(KeyError):
        ledger.entry(SHA, D1)


def test_stray_files_in_the_sha_folder_are_ignored(store):
    ledger = ChecksumLedger(store)
    _record(ledger, D1)
    store.put_bytes(b"partial", f"raw_media/ledger/{SHA}/.2026-01-05.json.abc.tmp")
    store.put_bytes(b"{}", f"raw_media/ledger/{SHA}/notes.txt")
    assert ledger.partitions(SHA) == [D1]


@pytest.mark.parametrize("bad", ["", "AB" * 32, "ab" * 31, "../" + "a" * 61, "g" * 64])
def test_rejects_malformed_sha(store, bad):
    ledger = ChecksumLedger(store)
    with pytest.raises(ValueError, match="sha256"):
        ledger.partitions(bad)
    with pytest.raises(ValueError, match="sha256"):
        _record(ledger, D1, sha=bad)
