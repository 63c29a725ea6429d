"""The same assets on S3 (a moto server on 127.0.0.1): only STYLE_PIPELINE_STORAGE changes."""

import io

import polars as pl
import pytest
from PIL import Image

from style_pipeline.demo.samples import make_photos
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day

DAY = "2026-11-14"
pytestmark = [pytest.mark.s3, pytest.mark.slow]


def test_ingest_and_curation_on_s3(s3_root, monkeypatch, tiny_models):
    monkeypatch.setenv("STYLE_PIPELINE_STORAGE", s3_root)
    drop = load_settings().drop_path() / DAY
    photos = make_photos(drop, 3, seed=7, size=(640, 480))
    (drop / "truncated.jpg").write_bytes(photos[0].read_bytes()[:2000])
    Image.new("RGB", (8, 8)).save(drop / "tiny.png")

    result = materialize_day(DAY, "group:ingest or group:curation")
    assert result.success

    store = Store(s3_root)
    assert store.root.protocol == "s3"
    raw = pl.read_parquet(io.BytesIO(store.read_bytes(f"raw_media/{DAY}.parquet")))
    reasons = dict(zip(raw["source_name"], raw["reject_reason"], strict=True))
    assert reasons[f"{DAY}/truncated.jpg"] == "truncated"
    accepted = raw.filter(pl.col("status") == "accepted")
    assert all(store.exists(key) for key in accepted["object_path"])
    frames = pl.read_parquet(io.BytesIO(store.read_bytes(f"frames/{DAY}.parquet")))
    assert all(store.exists(key) for key in frames["path"])
    for asset in ("quality_scores", "dedup_set", "embeddings", "clusters", "curated_frames"):
        assert store.exists(f"{asset}/{DAY}.parquet"), asset
    assert store.exists(f"dedup_set/index/{DAY}.parquet")
    assert store.list(f"raw_media/quarantine/{DAY}")  # the truncated file kept for inspection
