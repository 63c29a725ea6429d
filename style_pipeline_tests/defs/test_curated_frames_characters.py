"""curated_frames reads the day's characters table through dg.materialize: a reference
character with a max_share, photos of her among others in the drop, ingest + curation into a
temp root (real face models, tiny CLIP)."""

import io

import polars as pl
import pytest

from style_pipeline.demo.faces import write_jpeg
from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day
from style_pipeline_tests.curation.character_photos import grace_hopper, reference_folder, views

DAY = "2026-11-13"
pytestmark = pytest.mark.slow


def test_curated_frames_caps_a_character_and_reports_her(tiny_models, tmp_path, monkeypatch):
    refs = tmp_path / "refs"
    reference_folder(refs, "grace", grace_hopper(), "max_share: 0.25\n")
    monkeypatch.setenv("STYLE_PIPELINE_CHARACTERS__REFERENCES_DIR", str(refs))
    monkeypatch.setenv("STYLE_PIPELINE_CHARACTERS__WORKERS", "1")
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__SELECTION__BUDGET", "4")
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__SELECTION__PER_CLUSTER_K", "20")
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__SELECTION__OUTLIER_POLICY", "keep")
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__MIN_CURATED_PER_DAY", "1")
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__OVERRIDES_ROOT", str(tmp_path / "overrides"))
    drop = load_settings().drop_path() / DAY
    for i, image in enumerate(views(grace_hopper(), 4, seed=41)):
        write_jpeg(image, drop / f"grace_{i}.jpg")
    make_photos(drop, 4, seed=3, size=(640, 480))

    result = materialize_day(DAY, "group:ingest or group:curation")
    assert result.success
    store = Store(load_settings().storage_root())
    table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("curated_frames", DAY))))
    with_grace = table.filter(pl.col("characters").list.contains("grace"))
    assert with_grace.height >= 2  # her photos were found and named
    kept = table.filter(pl.col("keep"))
    assert with_grace.filter(pl.col("keep")).height == 1 == int(0.25 * kept.height)
    assert "character_share" in with_grace["code"].to_list()

    [event] = result.asset_materializations_for_node("curated_frames")
    meta = {k: v.value for k, v in event.metadata.items()}
    grace = meta["characters"]["grace"]
    assert (grace["kept"], grace["max_share"], grace["met"]) == (1, 0.25, True)
    assert "| grace |" in meta["character_shares"]
    assert meta["decisions"]["character_share"] >= 1


def test_a_day_without_a_characters_table_decides_as_before(tiny_models, tmp_path, monkeypatch):
    """curated_frames alone, its characters input never materialized: None, not a failure."""
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__MIN_CURATED_PER_DAY", "1")
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__OVERRIDES_ROOT", str(tmp_path / "overrides"))
    make_photos(load_settings().drop_path() / DAY, 4, seed=4, size=(640, 480))
    upstream = "group:ingest or group:curation"
    assert materialize_day(DAY, f"({upstream}) and not key:faces and not key:characters").success
    store = Store(load_settings().storage_root())
    assert not store.exists(layout.table_key("characters", DAY))
    table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("curated_frames", DAY))))
    assert table["characters"].list.len().sum() == 0
    before = table.select("frame_id", "keep", "code")
    again = materialize_day(DAY, "key:curated_frames")
    assert again.success
    [event] = again.asset_materializations_for_node("curated_frames")
    assert event.metadata["characters"].value == {}
    assert "no characters table" in event.metadata["character_shares"].value
    table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("curated_frames", DAY))))
    assert table.select("frame_id", "keep", "code").equals(before)
