"""The faces stage on real photos (local and S3 stores, the cache on a re-run), and the
``faces`` asset materialized from photos dropped for a day."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.settings import load_settings
from style_pipeline.stages.faces import FACES_SCHEMA, find_partition_faces
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-11-12"
SETTINGS = CharacterSettings(min_detector_score=0.3, workers=2)


def _photos() -> dict[str, np.ndarray]:
    from matplotlib import cbook
    from skimage import data

    with Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)) as im:
        grace = np.asarray(im.convert("RGB")).copy()
    return {"astronaut": data.astronaut(), "grace": grace, "coffee": data.coffee()}


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def _frames(store: Store) -> pl.DataFrame:
    """Frames astronaut, grace, coffee and the astronaut again (same bytes, another id)."""
    rows = []
    photos = _photos()
    for frame_id, name in (
        ("a", "astronaut"),
        ("g", "grace"),
        ("c", "coffee"),
        ("a2", "astronaut"),
    ):
        data = _jpeg(photos[name])
        key = store.put_bytes(data, layout.frame_key(DAY, frame_id))
        rows.append({"frame_id": frame_id, "path": key, "sha256": hashlib.sha256(data).hexdigest()})
    return pl.DataFrame(rows)


def _check_table(table: pl.DataFrame) -> None:
    assert table.schema == FACES_SCHEMA
    assert table["frame_id"].to_list() == ["a", "g", "a2"]  # frame order; coffee has none
    assert table["face_index"].to_list() == [0, 0, 0]
    assert set(table["detector"]) == {"dlib_hog"} and set(table["embedder"]) == {"dlib_resnet_v1"}
    assert all(len(e) == 128 for e in table["embedding"])
    assert (
        table.filter(pl.col("frame_id") == "a").drop("frame_id").to_dicts()
        == table.filter(pl.col("frame_id") == "a2").drop("frame_id").to_dicts()
    )
    a, g = (np.array(table["embedding"][i]) for i in (0, 1))
    assert np.linalg.norm(a - g) > 0.6
    box = table.row(0, named=True)
    assert (box["x0"], box["y0"], box["x1"], box["y1"]) == pytest.approx((175, 76, 266, 167), abs=6)


def test_stage_finds_faces_then_reads_them_back_from_the_cache(tmp_path):
    store = Store(tmp_path)
    frames = _frames(store)
    logged: list[str] = []
    table, facts = find_partition_faces(frames, store, SETTINGS, log=logged.append)
    _check_table(table)
    assert (facts.frames, facts.frames_with_faces, facts.faces, facts.embedded) == (4, 3, 3, 3)
    assert (facts.computed, facts.cached, facts.scanned_faces) == (3, 0, 2)  # a2 = a: once
    assert facts.workers == 2 and facts.scan_seconds > 0 and facts.faces_per_s > 0
    assert facts.models["detector"] == "dlib_hog" and facts.models["embedding_dim"] == 128
    assert any(line.startswith("faces: 3/3 frames") for line in logged)

    again, facts = find_partition_faces(frames, store, SETTINGS.model_copy(update={"workers": 1}))
    assert (facts.computed, facts.cached, facts.workers) == (0, 3, 0)
    assert again.equals(table)

    # other settings that shape the faces: another cache entry, computed again
    _, facts = find_partition_faces(frames, store, SETTINGS.model_copy(update={"upsample": 0}))
    assert (facts.computed, facts.cached) == (3, 0)


def test_stage_on_an_empty_day(tmp_path):
    frames = pl.DataFrame(schema={"frame_id": pl.String, "path": pl.String, "sha256": pl.String})
    table, facts = find_partition_faces(frames, Store(tmp_path), SETTINGS)
    assert table.is_empty() and table.schema == FACES_SCHEMA
    assert (facts.frames, facts.faces, facts.computed, facts.workers) == (0, 0, 0, 0)


def test_opencv_fallback_rows_have_boxes_and_no_embeddings(tmp_path):
    store = Store(tmp_path)
    table, facts = find_partition_faces(
        _frames(store), store, SETTINGS.model_copy(update={"detector": "opencv"})
    )
    assert set(table["detector"]) == {"opencv_haar"} and facts.embedded == 0
    assert table["embedding"].null_count() == table.height and table["embedder"].null_count() == 3
    assert {"a", "g"} <= set(table["frame_id"])


@pytest.mark.s3
def test_stage_reads_frames_from_s3(s3_root):
    store = Store(s3_root)
    table, facts = find_partition_faces(_frames(store), store, SETTINGS)
    _check_table(table)
    assert store.list(f"{SETTINGS.cache_dir}/faces")  # the cache lives in the same store


# The asset ------------------------------------------------------------------------------------


def _drop_photos() -> None:
    drop = load_settings().drop_path() / DAY
    drop.mkdir(parents=True, exist_ok=True)
    for name, image in _photos().items():
        (drop / f"{name}.jpg").write_bytes(_jpeg(image))


def _materialization(result, asset: str):
    (event,) = [
        e for e in result.get_asset_materialization_events() if e.asset_key.path[-1] == asset
    ]
    return event.materialization.metadata


@pytest.mark.slow
def test_faces_asset_from_dropped_photos(monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_CHARACTERS__MIN_DETECTOR_SCORE", "0.3")
    _drop_photos()
    result = materialize_day(DAY, "group:ingest or key:faces")
    assert result.success
    store = Store(load_settings().storage_root())
    table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("faces", DAY))))
    frames = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("frames", DAY))))
    names = dict(zip(frames["frame_id"], frames["source_name"], strict=True))
    assert sorted(names[f] for f in table["frame_id"]) == [
        f"{DAY}/astronaut.jpg",
        f"{DAY}/grace.jpg",
    ]
    assert table["embedding"].null_count() == 0
    meta = _materialization(result, "faces")
    assert meta["dagster/row_count"].value == 2
    assert (meta["frames"].value, meta["faces"].value, meta["embedded"].value) == (3, 2, 2)
    assert (meta["computed"].value, meta["cached"].value) == (3, 0)
    assert meta["detector"].value == "dlib_hog" and meta["embedder"].value == "dlib_resnet_v1"
    assert {"seconds", "faces_per_s", "scan_seconds", "sample"} <= set(meta)

    rerun = materialize_day(DAY, "faces")
    meta = _materialization(rerun, "faces")
    assert (meta["computed"].value, meta["cached"].value, meta["faces"].value) == (0, 3, 2)


@pytest.mark.slow
def test_faces_asset_when_characters_are_disabled(monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_CHARACTERS__ENABLED", "false")
    _drop_photos()
    result = materialize_day(DAY, "group:ingest or key:faces")
    assert result.success
    meta = _materialization(result, "faces")
    assert meta["dagster/row_count"].value == 0 and "enabled is false" in meta["reason"].value
    store = Store(load_settings().storage_root())
    table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("faces", DAY))))
    assert table.is_empty() and table.schema == FACES_SCHEMA
