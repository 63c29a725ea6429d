"""Quiet days: the nightly run on a day without drops trains on the window, and skips with
a reason (and succeeds) when the whole window is empty."""

import io
import json

import dagster as dg
import polars as pl
import pytest

from style_pipeline.defs.jobs import NIGHTLY_SELECTION
from style_pipeline.defs.run import materialize_partition
from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store

pytestmark = pytest.mark.slow
BUSY, QUIET, EMPTY_WINDOW = "2026-01-05", "2026-01-06", "2026-03-01"
NIGHTLY = "group:captioning or group:training"


def test_nightly_on_a_quiet_day_trains_on_the_window(tiny_models, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_CURATION__MIN_CURATED_PER_DAY", "2")
    assert NIGHTLY_SELECTION == dg.AssetSelection.groups("captioning", "training")
    settings = load_settings()
    instance = dg.DagsterInstance.ephemeral()
    make_photos(settings.drop_path() / BUSY, 6, seed=21, size=(640, 480))
    assert materialize_partition(BUSY, "*", instance=instance).success
    store = Store(settings.storage_root())

    quiet = materialize_partition(QUIET, NIGHTLY, instance=instance)
    assert quiet.success, quiet.failed_steps
    assert {"captions", "training_dataset", "lora_weights", "metrics"} <= set(quiet.materialized)
    captions = pl.read_parquet(io.BytesIO(store.read_bytes(f"captions/{QUIET}.parquet")))
    assert captions.is_empty()
    dataset = json.loads(store.read_bytes(f"training_dataset/{QUIET}.json"))
    assert BUSY in dataset["partitions"] and dataset["images"] > 0  # the busy day's frames
    reward = json.loads(store.read_bytes(f"reward_model/{QUIET}.json"))
    assert reward["trained"] is False and "quiet day" in reward["reason"]
    lora = json.loads(store.read_bytes(f"lora_weights/{QUIET}.json"))
    assert store.exists(f"{lora['prefix']}/pytorch_lora_weights.safetensors")
    assert json.loads(store.read_bytes(f"metrics/{QUIET}.json"))["lora_version"] == lora["version"]

    empty = materialize_partition(EMPTY_WINDOW, NIGHTLY, instance=instance)
    assert empty.success, empty.failed_steps
    assert "training_dataset" not in empty.materialized
    assert not store.exists(f"lora_weights/{EMPTY_WINDOW}.json")
    logs = [e.user_message for e in instance.all_logs(empty.run_id)]
    assert any("training skipped for 2026-03-01: no captions" in m for m in logs)
