"""Stage ``captions`` with the caption checks: columns, metadata facts, cached CLIP vectors."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import polars as pl
from PIL import Image

from style_pipeline.captioning.agreement import clip_text
from style_pipeline.captioning.vocabulary import load_default_ontology
from style_pipeline.contracts.caption_checks import CaptionCheckConfig
from style_pipeline.contracts.captioning import CaptionConfig
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.embeddings import EmbeddingCache, embed_texts, l2_normalize
from style_pipeline.models.clip import load_model
from style_pipeline.stages.captions import CAPTION_SCHEMA, CheckModels, caption_partition
from style_pipeline.storage.store import Store

DAY = "2026-04-05"
TRIGGER = "sps_style"
LABELS = pl.List(pl.Struct({"category": pl.String(), "term": pl.String(), "score": pl.Float64()}))
TERMS = ["portrait", "landscape", "street", "night"]


def _curated(store: Store, count: int) -> tuple[pl.DataFrame, list[bytes]]:
    blobs = []
    for i in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (48, 32), (40 * i, 90, 200 - 40 * i)).save(buffer, format="JPEG")
        blobs.append(buffer.getvalue())
        store.put_bytes(blobs[-1], f"frames/{DAY}/f{i}.jpg")
    labels = [[{"category": "subject", "term": TERMS[i], "score": 0.9}] for i in range(count)]
    frame = pl.DataFrame(
        {
            "frame_id": [f"f{i}" for i in range(count)],
            "keep": [True] * count,
            "path": [f"frames/{DAY}/f{i}.jpg" for i in range(count)],
            "labels": labels,
        },
        schema_overrides={"labels": LABELS},
    )
    return frame, blobs


def _config(**check) -> CaptionConfig:
    return CaptionConfig(
        backend="template",
        trigger_word=TRIGGER,
        token_counter="approx",
        check=CaptionCheckConfig(enabled="on", use_itm="off", **check),
    )


def test_checked_captions_reuse_cached_vectors_and_report_facts(tmp_path):
    store = Store(tmp_path / "s")
    curated, blobs = _curated(store, 4)
    clip = ModelConfig(profile="tiny", cache_dir=str(tmp_path / "m"), device="cpu")
    loaded = load_model(clip)
    rng = np.random.default_rng(0)
    vectors = l2_normalize(rng.normal(size=(4, loaded.dim)))
    cache = EmbeddingCache(store, loaded.model_id, loaded.dim)
    for blob, vector in zip(blobs, vectors, strict=True):
        cache.put(hashlib.sha256(blob).hexdigest(), vector)

    table, facts = caption_partition(
        curated, load_default_ontology(), store, _config(), models=CheckModels(clip)
    )
    assert table.schema == CAPTION_SCHEMA
    assert facts["caption_check"] == "on" and facts["image_vectors_from_embeddings_cache"]
    text = clip_text(table["caption"][1], [TRIGGER])
    expected = float(vectors[1] @ embed_texts(loaded, [text])[0])
    assert abs(table["clip_similarity"][1] - expected) < 1e-5
    assert facts["mismatched"] == int(table["caption_mismatch"].sum())
    assert facts["recaptioned"] == 0 and facts["recaption_attempts"] == 0  # template: no retry
    assert isinstance(facts["mean_clip_similarity"], float)
    assert facts["mean_itm_score"] == ""
    assert facts["token_encoders"] == "approx (approx, 77)"
    assert facts["token_count_max"] == max(table["token_count"].to_list()) <= 77
    assert facts["truncated"] == 0
    assert all(len(c) == 1 for c in table["token_counts"].to_list())


def test_auto_check_skips_a_random_init_clip_and_off_skips_loading(tmp_path):
    store = Store(tmp_path / "s")
    curated, _ = _curated(store, 2)
    clip = ModelConfig(profile="tiny", cache_dir=str(tmp_path / "m"), device="cpu")
    config = _config().model_copy(update={"check": CaptionCheckConfig(enabled="auto")})
    table, facts = caption_partition(
        curated, load_default_ontology(), store, config, models=CheckModels(clip)
    )
    assert str(facts["caption_check"]).startswith("skipped: check.enabled auto")
    assert table["clip_similarity"].null_count() == 2 and facts["mismatched"] == 0
    config = _config().model_copy(update={"check": CaptionCheckConfig(enabled="off")})
    _, facts = caption_partition(curated, load_default_ontology(), store, config)
    assert facts["caption_check"] == "skipped: check.enabled off"
