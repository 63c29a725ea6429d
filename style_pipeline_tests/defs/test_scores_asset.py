"""The scores asset materialized into a temp root on generated photos (tiny CLIP)."""

import io

import polars as pl
import pytest

from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-11-10"
pytestmark = pytest.mark.slow


def test_scores_asset_table_and_metadata(tiny_models):
    settings = load_settings()
    make_photos(settings.drop_path() / DAY, 4, seed=3, size=(640, 480))
    select = "+key:scores"  # scores and everything upstream of it
    result = materialize_day(DAY, select, raise_on_error=False)
    assert result.success
    store = Store(settings.storage_root())
    table = pl.read_parquet(io.BytesIO(store.read_bytes(f"scores/{DAY}.parquet")))
    frames = pl.read_parquet(io.BytesIO(store.read_bytes(f"frames/{DAY}.parquet")))
    assert sorted(table["frame_id"]) == sorted(frames["frame_id"])
    assert table["total_prelim"].is_between(0, 1).all()
    meta = {
        m.asset_key.to_user_string(): m.metadata
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }["scores"]
    assert meta["theme"].value == "default" and len(meta["theme_hash"].value) == 64
    assert meta["aesthetic_source"].value == "clip-proxy"
    assert meta["dagster/row_count"].value == len(table)
    assert "| frame_id | total_prelim |" in meta["top_10"].value
    assert 0 <= meta["mean_q_tech"].value <= 1
