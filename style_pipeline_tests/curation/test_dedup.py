from __future__ import annotations

import io
import logging
import uuid

import cv2
import numpy as np
import polars as pl
import pytest

from style_pipeline.contracts.curation import DedupConfig
from style_pipeline.curation import dedup
from style_pipeline.curation.dedup import HashedFrame
from style_pipeline.curation.hashing import hash_file, to_hex
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.factories import jpeg, save, scene

CONFIG = DedupConfig()
D1, D2, D3 = "2026-03-01", "2026-03-02", "2026-03-05"


def _frame(tmp_path, name: str, image: np.ndarray, quality: int = 95) -> HashedFrame:
    hashes = hash_file(save(image, tmp_path / f"{name}.jpg", quality))
    return HashedFrame(name, hashes.phash, hashes.dhash)


@pytest.fixture
def frames(tmp_path) -> dict[str, HashedFrame]:
    """a, b, c distinct; a_jpeg / a_half / a_crop near-duplicates of a; b_half of b."""
    a, b, c = scene(10), scene(11), scene(12)
    h, w = a.shape[:2]
    return {
        "a": _frame(tmp_path, "a", a),
        "a_jpeg": _frame(tmp_path, "a_jpeg", jpeg(a, 40), 40),
        "a_half": _frame(tmp_path, "a_half", cv2.resize(a, (w // 2, h // 2), cv2.INTER_AREA)),
        "a_crop": _frame(tmp_path, "a_crop", a[h // 40 : -h // 40, w // 40 : -w // 40]),
        "b": _frame(tmp_path, "b", b),
        "b_half": _frame(tmp_path, "b_half", cv2.resize(b, (w // 2, h // 2), cv2.INTER_AREA)),
        "c": _frame(tmp_path, "c", c),
    }


@pytest.mark.parametrize(
    ("phash_d", "dhash_d", "expected"),
    [
        (0, 40, True),
        (12, 64, True),
        (13, 12, True),
        (16, 12, True),
        (16, 13, False),
        (17, 0, False),
    ],
)
def test_near_duplicate_rule(phash_d, dhash_d, expected):
    assert bool(dedup.is_near_duplicate(phash_d, dhash_d, CONFIG)) is expected


def test_groups_recompressed_resized_and_cropped_copies_only(frames):
    rows = dedup.group_frames(list(frames.values()), D1, CONFIG)
    group = dict(zip(rows["frame_id"], rows["group_id"], strict=True))
    assert group["a_jpeg"] == group["a_half"] == group["a_crop"] == group["a"]
    assert group["b_half"] == group["b"]
    assert len({group["a"], group["b"], group["c"]}) == 3
    assert rows.schema == dedup.DEDUP_SCHEMA
    assert rows.filter(pl.col("is_duplicate"))["distance"].drop_nulls().len() == 4


@pytest.mark.parametrize(
    ("quality", "representative"),
    [
        (None, "a"),  # no scores: lowest frame_id
        ({"a": 1.0, "a_jpeg": 5.0, "a_half": 2.0, "a_crop": 0.0}, "a_jpeg"),
        ({"a": 3.0, "a_jpeg": 3.0, "a_half": 3.0, "a_crop": 1.0}, "a"),  # tie: lowest id
        ({"a": None, "a_half": 0.5}, "a_half"),  # missing scores rank last
    ],
)
def test_representative_is_best_quality(frames, quality, representative):
    members = [frames[k] for k in ("a_half", "a_jpeg", "a", "a_crop")]
    rows = dedup.group_frames(members, D1, CONFIG, quality=quality)
    kept = rows.filter(~pl.col("is_duplicate"))
    assert kept["frame_id"].to_list() == [representative]
    assert set(rows.filter(pl.col("is_duplicate"))["duplicate_of"]) == {representative}
    assert set(rows["group_id"]) == {representative}
    assert rows["group_size"].to_list() == [4] * 4


def test_rejects_duplicate_ids_and_bad_partition(frames):
    with pytest.raises(ValueError, match="unique"):
        dedup.group_frames([frames["a"], frames["a"]], D1, CONFIG)
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        dedup.group_frames([frames["a"]], "yesterday", CONFIG)


def test_earlier_entries_must_be_earlier(frames):
    later = pl.DataFrame([("x", to_hex(1), to_hex(1), D2)], schema=dedup.INDEX_SCHEMA, orient="row")
    with pytest.raises(ValueError, match="earlier"):
        dedup.group_frames([frames["a"]], D1, CONFIG, earlier=later)


def _stores(tmp_path):
    return [Store(tmp_path / "storage"), Store(f"memory://dedup-{uuid.uuid4().hex}")]


@pytest.mark.parametrize("backend", ["local", "memory"])
def test_incremental_index_in_order_backfill_and_rerun(tmp_path, frames, backend):
    store = dict(zip(["local", "memory"], _stores(tmp_path), strict=True))[backend]
    day1 = [frames["a"], frames["b"]]
    day2 = [frames["a_jpeg"], frames["b_half"], frames["c"]]

    first1 = dedup.dedup_partition(store, D1, day1, CONFIG)
    first2 = dedup.dedup_partition(store, D2, day2, CONFIG)
    assert not first1["is_duplicate"].any()
    dup = first2.filter(pl.col("is_duplicate"))
    assert dict(zip(dup["frame_id"], dup["duplicate_of"], strict=True)) == {
        "a_jpeg": "a",
        "b_half": "b",
    }
    assert set(dup["duplicate_partition"]) == {D1}
    index2 = pl.read_parquet(store.read_bytes(dedup.index_key(D2, CONFIG)))
    assert index2["frame_id"].to_list() == ["c"]  # only kept frames enter the index

    # Re-running either day changes nothing, files included.
    before = store.read_bytes(dedup.index_key(D2, CONFIG))
    assert dedup.dedup_partition(store, D2, day2, CONFIG).equals(first2)
    assert dedup.dedup_partition(store, D1, day1, CONFIG).equals(first1)
    assert store.read_bytes(dedup.index_key(D2, CONFIG)) == before

    # Backfill order on a fresh root: day 2 first sees nothing, day 1 ignores later days,
    # and day 2 re-run after the backfill gives the in-order answer.
    fresh = Store(tmp_path / "fresh")
    assert not dedup.dedup_partition(fresh, D2, day2, CONFIG)["is_duplicate"].any()
    assert dedup.dedup_partition(fresh, D1, day1, CONFIG).equals(first1)
    assert dedup.dedup_partition(fresh, D2, day2, CONFIG).equals(first2)


def test_lookback_limits_earlier_days(tmp_path, frames):
    store = Store(tmp_path / "storage")
    dedup.dedup_partition(store, D1, [frames["a"]], CONFIG)
    assert dedup.load_index(store, D3, CONFIG)["frame_id"].to_list() == ["a"]
    short = DedupConfig(lookback_days=2)
    assert dedup.load_index(store, D3, short).height == 0
    rows = dedup.dedup_partition(store, D3, [frames["a_half"]], short)
    assert not rows["is_duplicate"].any()


def test_index_skips_temp_files_and_rejects_strangers(tmp_path, frames):
    store = Store(tmp_path / "storage")
    dedup.dedup_partition(store, D1, [frames["a"]], CONFIG)
    store.put_bytes(b"partial", f"{CONFIG.index_prefix}/.{D2}.parquet.abc.tmp")
    assert dedup.load_index(store, D3, CONFIG).height == 1
    store.put_bytes(b"junk", f"{CONFIG.index_prefix}/notes.txt")
    with pytest.raises(ValueError, match="unexpected file"):
        dedup.load_index(store, D3, CONFIG)


def test_group_with_several_earlier_matches_points_each_to_its_nearest(tmp_path, frames):
    earlier = pl.DataFrame(
        [
            ("a", to_hex(frames["a"].phash), to_hex(frames["a"].dhash), D1),
            ("b", to_hex(frames["b"].phash), to_hex(frames["b"].dhash), D2),
        ],
        schema=dedup.INDEX_SCHEMA,
        orient="row",
    )
    rows = dedup.group_frames([frames["a_half"], frames["b_half"]], D3, CONFIG, earlier=earlier)
    assert rows["duplicate_of"].to_list() == ["a", "b"]
    assert rows["duplicate_partition"].to_list() == [D1, D2]
    assert rows["is_duplicate"].all()


def test_empty_partition_writes_empty_index(tmp_path):
    store = Store(tmp_path / "storage")
    rows = dedup.dedup_partition(store, D1, [], CONFIG)
    assert rows.height == 0 and rows.schema == dedup.DEDUP_SCHEMA
    assert store.exists(dedup.index_key(D1, CONFIG))
    assert dedup.load_index(store, D2, CONFIG).height == 0


def _damage_index(store: Store, how: str) -> str:
    key = dedup.index_key(D1, CONFIG)
    whole = store.read_bytes(key)
    damaged = {
        "truncated": whole[: len(whole) // 2],
        "garbage": b"\x00\x01 not parquet",
        "foreign": _parquet(pl.DataFrame({"x": [1]})),
        "wrong_day": _parquet(pl.read_parquet(whole).with_columns(partition=pl.lit(D3))),
    }[how]
    store.put_bytes(damaged, key)
    return key


def _parquet(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("how", ["truncated", "garbage", "foreign", "wrong_day"])
def test_an_unreadable_index_day_is_rebuilt_from_its_table_and_rewritten(
    tmp_path, frames, caplog, how
):
    store = Store(tmp_path / "storage")
    day1, day2 = [frames["a"], frames["b"], frames["a_half"]], [frames["a_jpeg"], frames["c"]]
    table1 = dedup.dedup_partition(store, D1, day1, CONFIG)
    store.put_bytes(_parquet(table1), layout.table_key(layout.DEDUP_SET, D1))  # the IO manager's
    clean_index = store.read_bytes(dedup.index_key(D1, CONFIG))
    clean = Store(tmp_path / "clean")
    dedup.dedup_partition(clean, D1, day1, CONFIG)
    clean2 = dedup.dedup_partition(clean, D2, day2, CONFIG)
    key = _damage_index(store, how)

    with caplog.at_level(logging.WARNING, logger="style_pipeline.curation.dedup"):
        again2 = dedup.dedup_partition(store, D2, day2, CONFIG)
    assert again2.equals(clean2) and again2["is_duplicate"].to_list() == [True, False]
    [record] = caplog.records
    assert key in record.getMessage() and f"dedup_set/{D1}.parquet" in record.getMessage()
    assert store.read_bytes(key) == clean_index  # rewritten as it was
    caplog.clear()
    assert dedup.load_index(store, D2, CONFIG)["frame_id"].to_list() == ["a", "b"]
    assert caplog.records == []


def test_an_index_day_without_a_table_names_both_keys_and_the_fix(tmp_path, frames):
    store = Store(tmp_path / "storage")
    dedup.dedup_partition(store, D1, [frames["a"]], CONFIG)
    key = _damage_index(store, "truncated")
    with pytest.raises(dedup.DedupIndexError) as raised:
        dedup.load_index(store, D2, CONFIG)
    message = str(raised.value)
    assert key in message and f"dedup_set/{D1}.parquet" in message
    assert f"re-materialize dedup_set for {D1}" in message
