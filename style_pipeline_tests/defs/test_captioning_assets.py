"""Captioning assets on top of curation, with tiny models and a 2-step fine-tune."""

import io

import polars as pl
import pytest

from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-11-12"
pytestmark = pytest.mark.slow


def _materialize(select):
    return materialize_day(DAY, select)


def test_caption_model_then_captions(tiny_models):
    settings = load_settings()
    make_photos(settings.drop_path() / DAY, 4, seed=5, size=(640, 480))
    result = _materialize("*")
    assert result.success
    store = Store(settings.storage_root())
    model = result.output_for_node("caption_model").model_dump(mode="json")  # a document model
    assert model["trained"] is True and model["steps"] == 2
    assert store.exists(f"{model['key']}/adapter_model.safetensors")
    assert store.exists(f"caption_model/{DAY}.json")

    captions = pl.read_parquet(io.BytesIO(store.read_bytes(f"captions/{DAY}.parquet")))
    curated = pl.read_parquet(io.BytesIO(store.read_bytes(f"curated_frames/{DAY}.parquet")))
    assert sorted(captions["frame_id"]) == sorted(curated.filter(pl.col("keep"))["frame_id"])
    trigger = settings.captioning.caption.trigger_word
    assert all(c.split(",")[0].split()[0] == trigger for c in captions["caption"])
    assert captions["source"].unique().to_list() == ["blip"]
    _assert_table_metadata(result, store)

    # same seeds, same config: the version is reused, not retrained
    again = _materialize("caption_model").output_for_node("caption_model").model_dump()
    assert again["trained"] is False
    assert again["version"] == model["version"]


def _assert_table_metadata(result, store):
    """Every table asset (kind parquet) reports its row count and the contract's columns."""
    from style_pipeline.defs.run import load_defs

    specs = load_defs().resolve_all_asset_specs()
    everything = {s.key.to_user_string() for s in specs if "parquet" in s.kinds}
    assert len(everything) == 16  # ... faces, characters, the speech tables and aligned_pairs
    # this run materializes the image side; the speech and llm tables build the same
    # metadata with defs.metadata.table_metadata (chat_events' asset test checks it)
    tables = {s.key.to_user_string() for s in specs if "parquet" in s.kinds
              and s.group_name not in ("speech", "llm")}  # fmt: skip
    assert len(tables) == 12
    seen = set()
    for event in result.get_asset_materialization_events():
        name = event.asset_key.to_user_string()
        if name not in tables:
            continue
        seen.add(name)
        meta = event.materialization.metadata
        stored = pl.read_parquet(io.BytesIO(store.read_bytes(f"{name}/{DAY}.parquet")))
        assert meta["dagster/row_count"].value == len(stored), name
        columns = meta["dagster/column_schema"].value.columns
        assert [c.name for c in columns] == stored.columns, name
        assert all(c.type for c in columns), name
    assert seen == tables
