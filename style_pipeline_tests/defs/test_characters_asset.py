"""The characters asset through dg.materialize: photos in the drop, a reference folder,
ingest -> faces -> characters into a temp root (real face models)."""

import io

import polars as pl
import pytest

from style_pipeline.demo.faces import write_jpeg
from style_pipeline.settings import load_settings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day
from style_pipeline_tests.curation.character_photos import (
    eileen,
    grace_hopper,
    reference_folder,
    views,
)

DAY = "2026-11-12"
pytestmark = pytest.mark.slow
SELECT = "key:raw_media or key:frames or key:faces or key:characters"


def test_characters_asset_names_faces_and_reports(tmp_path, monkeypatch):
    refs = tmp_path / "refs"
    reference_folder(refs, "grace", grace_hopper(), "trigger_word: grace_sps\n")
    (refs / "grace" / "empty.jpg").write_bytes(b"")
    (refs / "Bad Name").mkdir()
    monkeypatch.setenv("STYLE_PIPELINE_CHARACTERS__REFERENCES_DIR", str(refs))
    monkeypatch.setenv("STYLE_PIPELINE_CHARACTERS__WORKERS", "1")
    drop = load_settings().drop_path() / DAY
    for i, image in enumerate(views(grace_hopper(), 2, seed=31)):
        write_jpeg(image, drop / f"grace_{i}.jpg")
    for i, image in enumerate(views(eileen(), 3, seed=32, strength=0.4)):
        write_jpeg(image, drop / f"eileen_{i}.jpg")

    result = materialize_day(DAY, SELECT)
    assert result.success
    store = Store(load_settings().storage_root())
    table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("characters", DAY))))
    assert table.filter(pl.col("label") == "grace").height == 2
    assert table.filter(pl.col("label") == "unknown_0").height == 3
    assert store.exists(layout.unknown_group_key(DAY, "unknown_0"))

    [materialization] = [m for m in result.asset_materializations_for_node("characters")]
    meta = {k: v.value for k, v in materialization.metadata.items()}
    assert meta["matched"] == {"grace": 2} and meta["unknown_groups"] == 1
    assert meta["rejected_references"] == 1 and "empty.jpg" in meta["rejected"]
    assert "Bad Name" in meta["rejected"] and "unknown_groups.jpg" in meta["unknown"]
    assert meta["dagster/row_count"] == table.height and meta["seconds"] > 0
