"""Ingest assets: direct invocation with build_asset_context, and materialize into a temp root."""

import datetime as dt
import io

import dagster as dg
import polars as pl
import pytest
from PIL import Image

from style_pipeline.defs.ingest.assets import frames, raw_media
from style_pipeline.defs.resources import (
    DropFolderResource,
    SettingsResource,
    StorageResource,
    build_resources,
)
from style_pipeline.storage.store import Store

DAY = "2026-11-20"


def _jpeg(path, colour, size=(96, 64)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, quality=90)


@pytest.fixture
def drop(tmp_path):
    root = tmp_path / "drop"
    _jpeg(root / DAY / "red.jpg", (200, 10, 10))
    _jpeg(root / DAY / "same as red.jpg", (200, 10, 10))
    (root / DAY / "notes.jpg").write_text("<html>not an image</html>")
    (root / DAY / "empty.png").write_bytes(b"")
    _jpeg(root / "2026-11-19" / "other-day.jpg", (10, 200, 10))
    return root


def _resources(tmp_path):
    return {
        "settings": SettingsResource(),
        "storage": StorageResource(root=str(tmp_path / "storage")),
        "drop_folder": DropFolderResource(path=str(tmp_path / "drop")),
    }


def test_raw_media_direct_invocation(tmp_path, drop):
    context = dg.build_asset_context(partition_key=DAY)
    output = raw_media(context=context, **_resources(tmp_path))
    table = output.value
    by_name = {r["source_name"]: r for r in table.to_dicts()}
    assert set(by_name) == {
        f"{DAY}/{n}" for n in ("red.jpg", "same as red.jpg", "notes.jpg", "empty.png")
    }
    assert by_name[f"{DAY}/red.jpg"]["status"] == "accepted"
    assert by_name[f"{DAY}/same as red.jpg"]["reject_reason"] == "duplicate_content"
    assert by_name[f"{DAY}/notes.jpg"]["reject_reason"] == "extension_mismatch"
    assert by_name[f"{DAY}/empty.png"]["reject_reason"] == "empty_file"
    assert output.metadata["accepted"].value == 1
    assert output.metadata["rejects_by_reason"].value == {
        "duplicate_content": 1,
        "empty_file": 1,
        "extension_mismatch": 1,
    }
    sha = by_name[f"{DAY}/red.jpg"]["media_id"]
    assert (tmp_path / "storage" / "raw_media" / "objects" / sha[:2] / f"{sha}.jpg").is_file()


def test_ingest_group_materializes_exact_paths(tmp_path, drop):
    resources = {**build_resources(), **_resources(tmp_path)}
    result = dg.materialize([raw_media, frames], partition_key=DAY, resources=resources)
    assert result.success
    store = Store(str(tmp_path / "storage"))
    assert store.exists(f"raw_media/{DAY}.parquet")
    assert store.exists(f"frames/{DAY}.parquet")
    table = pl.read_parquet(io.BytesIO(store.read_bytes(f"frames/{DAY}.parquet")))
    assert len(table) == 1
    row = table.row(0, named=True)
    assert row["mode"] == "still" and row["path"] == f"frames/{DAY}/{row['frame_id']}.jpg"
    assert store.exists(row["path"])
    # the other day's file is not in this partition
    raw = pl.read_parquet(io.BytesIO(store.read_bytes(f"raw_media/{DAY}.parquet")))
    assert not raw.filter(pl.col("source_name").str.contains("other-day")).height


def test_empty_partition_gives_typed_empty_tables(tmp_path):
    resources = {**build_resources(), **_resources(tmp_path)}
    empty_day = (dt.date.fromisoformat(DAY) - dt.timedelta(days=3)).isoformat()
    result = dg.materialize([raw_media, frames], partition_key=empty_day, resources=resources)
    assert result.success
    assert result.output_for_node("frames").is_empty()
    assert "frame_id" in result.output_for_node("frames").columns
