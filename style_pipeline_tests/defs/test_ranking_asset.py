"""The ``ranking`` asset materialized into a temp root on generated photos (tiny CLIP).

Runs the real upstream (raw_media, frames, quality_scores, embeddings, clusters, scores)
and checks the exact keys, the table and the metadata a person reads.
"""

from __future__ import annotations

import io

import polars as pl
import pytest

from style_pipeline.contracts.curation import JudgmentsDocument, RankingRecord
from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-11-13"
pytestmark = pytest.mark.slow


def test_ranking_asset_keys_table_and_metadata(tiny_models):
    settings = load_settings()
    make_photos(settings.drop_path() / DAY, 6, seed=3, size=(640, 480))
    result = materialize_day(DAY, "*ranking", raise_on_error=True)
    assert result.success
    store = Store(settings.storage_root())
    table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("ranking", DAY))))
    frames = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("frames", DAY))))
    assert table.schema == polars_schema(RankingRecord)
    assert sorted(table["frame_id"]) == sorted(frames["frame_id"])
    document = JudgmentsDocument.model_validate_json(
        store.read_bytes(f"ranking/{DAY}/judgments.json")
    )
    assert document.spend.judge == "heuristic" and document.spend.pair_budget == 400
    assert document.spend.pairs == len(document.judgments) > 0
    heroes = table.filter(pl.col("hero"))
    clusters_with_contenders = table.filter(pl.col("contender"))["cluster"].unique()
    assert sorted(heroes["cluster"]) == sorted(clusters_with_contenders)
    assert table.filter(~pl.col("contender"))["reason"].null_count() == 0

    (event,) = [e for e in result.get_asset_materialization_events()
                if e.asset_key.to_user_string() == "ranking"]  # fmt: skip
    meta = {k: v.value for k, v in event.materialization.metadata.items()}
    assert meta["pairs"] == f"{document.spend.pairs} / 400"
    assert meta["tokens"] == "0 / 400000" and meta["cost_usd"] == 0.0
    assert meta["cache_hits"] == 0 and meta["fallbacks"] == 0
    assert meta["heroes"] == len(heroes) and meta["dagster/row_count"] == len(frames)
    assert meta["judgments"] == f"ranking/{DAY}/judgments.json"
    for fid in heroes["frame_id"]:
        assert fid in meta["hero_table"]
