"""The raw_media stage: one day of the drop folder, typed rows, facts and stored keys."""

from __future__ import annotations

import pytest
from PIL import Image

from style_pipeline.contracts.ingest import IngestSettings
from style_pipeline.contracts.media import RawMediaRecord
from style_pipeline.stages.raw_media import Rejection, ingest_partition
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

DAY = "2026-11-20"


def _jpeg(path, colour):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (96, 64), colour).save(path, quality=90)


@pytest.fixture
def drop(tmp_path):
    root = tmp_path / "drop"
    _jpeg(root / DAY / "red.jpg", (200, 10, 10))
    _jpeg(root / DAY / "copy.jpg", (200, 10, 10))
    (root / DAY / "empty.png").write_bytes(b"")
    _jpeg(root / "2026-11-19" / "other-day.jpg", (10, 200, 10))
    return root


def test_ingest_partition_rows_facts_and_keys(tmp_path, drop):
    store = Store(str(tmp_path / "storage"))
    table, facts = ingest_partition(drop, store, DAY, IngestSettings())
    assert table.columns == list(RawMediaRecord.model_fields)
    assert sorted(table["source_name"]) == [
        f"{DAY}/{n}" for n in ("copy.jpg", "empty.png", "red.jpg")
    ]
    assert (facts.files, facts.accepted, facts.rejected) == (3, 1, 2)
    assert facts.drop_folder == drop
    assert set(facts.rejections) == {
        Rejection(f"{DAY}/empty.png", "empty_file", "the file is empty (0 bytes)"),
        Rejection(
            f"{DAY}/red.jpg",
            "duplicate_content",
            f"same content as '{DAY}/copy.jpg' in this partition",
        ),
    }
    (accepted,) = table.filter(table["status"] == "accepted").to_dicts()
    assert facts.bytes_accepted == accepted["size_bytes"] > 0
    assert accepted["object_path"] == layout.raw_object_key(accepted["media_id"], ".jpg")
    assert store.exists(accepted["object_path"])
    assert store.exists(layout.ledger_key(accepted["media_id"], DAY))


def test_missing_drop_folder_gives_a_typed_empty_table(tmp_path):
    table, facts = ingest_partition(tmp_path / "none", Store(str(tmp_path)), DAY, IngestSettings())
    assert table.is_empty() and table.columns == list(RawMediaRecord.model_fields)
    assert (facts.files, facts.accepted, facts.rejected, facts.bytes_accepted) == (0, 0, 0, 0)


def test_skipped_entries_are_rows_of_their_arrival_day(tmp_path, drop):
    """Dot files and folders named like media used to vanish without a row (issue 17, 9)."""
    (drop / DAY / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (drop / DAY / "trip.mov").mkdir()
    (drop / "2026-11-19" / ".hidden.jpg").write_bytes(b"other day")
    table, facts = ingest_partition(drop, Store(str(tmp_path / "storage")), DAY, IngestSettings())
    rows = {r["source_name"]: r for r in table.to_dicts()}
    assert rows[f"{DAY}/.DS_Store"]["reject_reason"] == "hidden"
    assert rows[f"{DAY}/trip.mov"]["reject_reason"] == "not_a_file"
    assert "2026-11-19/.hidden.jpg" not in rows
    assert (facts.files, facts.accepted, facts.rejected) == (5, 1, 4)
    assert {r.reason for r in facts.rejections} == {
        "empty_file", "duplicate_content", "hidden", "not_a_file"
    }  # fmt: skip
