"""The embeddings stage with the tiny CLIP model: rows, facts, and the cache on a re-run."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.curation import EmbeddingConfig
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.embeddings import model_cache_key, vectors_from_frame
from style_pipeline.stages.embeddings import embed_partition
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.factories import scene

DAY = "2026-11-10"


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    return ModelConfig(profile="tiny", cache_dir=str(tmp_path_factory.mktemp("models")))


def _frames(store: Store, seeds: list[int]) -> pl.DataFrame:
    rows = []
    for seed in seeds:
        buffer = io.BytesIO()
        Image.fromarray(scene(seed, 72, 96)).save(buffer, format="JPEG", quality=90)
        data, fid = buffer.getvalue(), f"f{seed}"
        key = store.put_bytes(data, layout.frame_key(DAY, fid))
        rows.append({"frame_id": fid, "path": key, "sha256": hashlib.sha256(data).hexdigest()})
    return pl.DataFrame(rows)


def test_the_config_default_is_the_layout_folder():
    assert EmbeddingConfig().cache_prefix == layout.EMBEDDING_CACHE


def test_embed_partition_then_rerun_from_the_cache(tmp_path, tiny_config):
    store = Store(str(tmp_path))
    frames = _frames(store, [1, 2, 3])
    table, facts = embed_partition(frames, store, tiny_config, EmbeddingConfig(batch_size=2))
    assert table["frame_id"].to_list() == ["f1", "f2", "f3"]
    assert (facts.computed, facts.cached) == (3, 0)
    assert facts.fallback_reason == "" == facts.model["fallback_reason"]
    assert facts.model["profile_used"] == "tiny"
    assert facts.model["model_id"] == table["model_id"][0]
    cache_dir = layout.embedding_cache_dir(model_cache_key(table["model_id"][0]))
    assert store.exists(layout.embedding_cache_key(cache_dir, frames["sha256"][0]))

    again, facts = embed_partition(frames, store, tiny_config, EmbeddingConfig())
    assert (facts.computed, facts.cached) == (0, 3)
    assert again["embedding"].to_list() == table["embedding"].to_list()


def test_a_truncated_cache_entry_is_recomputed_not_fatal(tmp_path, tiny_config, caplog):
    store = Store(str(tmp_path))
    frames = _frames(store, [4, 5])
    clean, _ = embed_partition(frames, store, tiny_config, EmbeddingConfig())
    cache_dir = layout.embedding_cache_dir(model_cache_key(clean["model_id"][0]))
    entry = layout.embedding_cache_key(cache_dir, frames["sha256"][1])
    store.put_bytes(store.read_bytes(entry)[:64], entry)  # what a kill -9 could leave elsewhere

    with caplog.at_level("WARNING", logger="style_pipeline.curation.embeddings"):
        again, facts = embed_partition(frames, store, tiny_config, EmbeddingConfig())
    assert (facts.computed, facts.cached) == (1, 1)
    assert any(entry in r.getMessage() for r in caplog.records)
    assert facts.unreadable == (entry,)  # reported to the asset, which logs and counts it
    np.testing.assert_allclose(vectors_from_frame(again), vectors_from_frame(clean), atol=1e-6)
    _, facts = embed_partition(frames, store, tiny_config, EmbeddingConfig())
    assert (facts.computed, facts.cached) == (0, 2)  # the entry was rewritten
