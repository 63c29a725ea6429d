"""Curation assets materialized into a temp root on generated photos (tiny CLIP)."""

import io

import polars as pl
import pytest

from style_pipeline.contracts.curation import CuratedListDocument
from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-11-10"
pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_env(tiny_models, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__MIN_CURATED_PER_DAY", "2")
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__SELECTION__BUDGET", "3")


def _materialize(select="group:ingest or group:curation"):
    return materialize_day(DAY, select, raise_on_error=False)


def _table(store, key):
    return pl.read_parquet(io.BytesIO(store.read_bytes(key)))


def test_curation_group_paths_decisions_and_checks(tiny_env, tmp_path, monkeypatch):
    settings = load_settings()
    photos = make_photos(settings.drop_path() / DAY, 5, seed=1, size=(640, 480))
    # the same photo twice under another name: rejected at ingest as duplicate content
    (settings.drop_path() / DAY / "copy.jpg").write_bytes(photos[0].read_bytes())
    overrides = tmp_path / "overrides"
    overrides.mkdir()
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__OVERRIDES_ROOT", str(overrides))
    result = _materialize()
    assert result.success
    store = Store(settings.storage_root())
    for asset in ("quality_scores", "dedup_set", "embeddings", "clusters", "curated_frames"):
        assert store.exists(f"{asset}/{DAY}.parquet"), asset
    assert store.exists(f"ontology/{DAY}.json")
    assert store.exists(f"dedup_set/index/{DAY}.parquet")

    curated = _table(store, f"curated_frames/{DAY}.parquet")
    frames = _table(store, f"frames/{DAY}.parquet")
    assert sorted(curated["frame_id"]) == sorted(frames["frame_id"])
    assert curated["reason"].str.len_chars().min() > 0
    assert 2 <= curated["keep"].sum() <= 3
    emb = _table(store, f"embeddings/{DAY}.parquet")
    assert emb["dim"][0] == emb.schema["embedding"].size
    assert all(len(labels) > 0 for labels in curated["labels"].to_list())

    checks = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert {k: checks[k] for k in ("gate_pass_rate", "duplicate_rate", "min_curated_count")} == {
        "gate_pass_rate": True, "duplicate_rate": True, "min_curated_count": True
    }  # fmt: skip

    # the theme's roles and tags, and the curated list with its export folder
    kept = curated.filter(pl.col("keep"))
    assert sorted(kept["role"]) == ["anchor", "closer", "opener"]  # scarcest roles first
    assert all(
        any(t.startswith("orientation:") for t in tags) for tags in curated["diversity_tags"]
    )
    document = CuratedListDocument.model_validate_json(store.read_bytes(f"curated_list/{DAY}.json"))
    assert [i.frame_id for i in document.items] == sorted(
        kept["frame_id"], key=[i.frame_id for i in document.items].index
    ) and len(document.items) == kept.height
    assert document.items[0].role == "opener" and document.theme.name == "default"
    assert store.list(f"curated_list/{DAY}/export") == [
        i.artifacts["export"] for i in document.items
    ]
    metadata = {
        e.asset_key.path[-1]: e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    assert "| palette |" in metadata["curated_list"]["coverage"].value
    assert metadata["curated_list"]["roles"].value["opener"] == 1
    assert "top_10" in metadata["curated_list"] and "judge_pairs" in metadata["curated_list"]

    # overrides: exclude a kept frame, lock in a dropped one
    kept = curated.filter(pl.col("keep"))["frame_id"][0]
    dropped = curated.filter(~pl.col("keep"))["frame_id"][0]
    (overrides / f"{DAY}.yml").write_text(f"lock_in: [{dropped}]\nexclude: [{kept}]\n")
    assert _materialize("curated_frames").success
    again = _table(store, f"curated_frames/{DAY}.parquet")
    decided = dict(zip(again["frame_id"], again["keep"], strict=True))
    assert decided[kept] is False and decided[dropped] is True

    # a re-run computes no new embeddings (cache by content + model)
    rerun = _materialize("embeddings")
    mats = [e for e in rerun.get_asset_materialization_events()]
    assert mats[0].materialization.metadata["computed"].value == 0


def test_min_curated_check_blocks_when_too_few(tiny_env, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__MIN_CURATED_PER_DAY", "50")
    make_photos(load_settings().drop_path() / DAY, 3, seed=2, size=(640, 480))
    result = _materialize()
    checks = {
        e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks["min_curated_count"] is False
