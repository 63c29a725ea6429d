"""The scores stage against a local Store with the tiny CLIP model."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from style_pipeline.contracts.curation import CurationSettings, EmbeddingConfig, QualityConfig
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.scorecard.aesthetic import LaionAestheticHead
from style_pipeline.curation.themes import load_theme
from style_pipeline.stages.embeddings import embed_partition
from style_pipeline.stages.quality_scores import score_partition
from style_pipeline.stages.scores import SCORECARD_VERSION, score_day
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.reward import BrandMLP, RewardModel, save_reward_model
from style_pipeline_tests.curation.factories import scene

DAY = "2026-11-10"


@pytest.fixture
def day(tmp_path):
    store = Store(tmp_path / "root")
    rows = []
    for seed in range(4):
        buffer = io.BytesIO()
        Image.fromarray(scene(seed, 240, 320)).save(buffer, format="JPEG", quality=90)
        data, fid = buffer.getvalue(), f"f{seed}"
        key = store.put_bytes(data, layout.frame_key(DAY, fid))
        rows.append(
            {
                "frame_id": fid,
                "path": key,
                "sha256": hashlib.sha256(data).hexdigest(),
                "media_id": fid,
                "timestamp_s": 0.0,
            }
        )
    frames = pl.DataFrame(rows)
    cfg = CurationSettings(clip=ModelConfig(profile="tiny", cache_dir=str(tmp_path / "models")))
    quality, _ = score_partition(frames, store, QualityConfig())
    embeddings, _ = embed_partition(frames, store, cfg.clip, EmbeddingConfig())
    return frames, quality, embeddings, store, cfg


def _theme():
    return load_theme("default", "data/themes")


def test_rows_scores_and_theme_columns(day):
    frames, quality, embeddings, store, cfg = day
    table, facts = score_day(frames, quality, embeddings, store, DAY, cfg, _theme())
    assert table["frame_id"].to_list() == frames["frame_id"].to_list()
    for column in ("q_tech", "aesthetic", "vibe", "typography", "composition", "total_prelim"):
        assert table[column].is_between(0, 1).all(), column
    assert set(table["theme"]) == {"default"} and set(table["theme_hash"]) == {
        _theme().theme_hash()
    }
    assert set(table["scorecard_version"]) == {SCORECARD_VERSION}
    assert facts.aesthetic_source == "clip-proxy" and facts.frames == 4
    assert set(facts.means) >= {"q_tech", "total_prelim"}


def test_reward_model_then_laion_head_take_over(day, tmp_path):
    frames, quality, embeddings, store, cfg = day
    dim = int(embeddings["dim"][0])
    model_id = embeddings["model_id"][0]
    torch.manual_seed(0)
    save_reward_model(
        RewardModel(BrandMLP(dim, 8), {"dim": dim, "hidden": 8, "embedding_model": model_id}),
        store,
        "2026-11-09",
    )
    save_reward_model(
        RewardModel(BrandMLP(dim, 8), {"dim": dim, "hidden": 8, "embedding_model": "other@x"}),
        store,
        "2026-11-08",
    )
    table, facts = score_day(frames, quality, embeddings, store, DAY, cfg, _theme())
    assert facts.aesthetic_source == "reward_model:2026-11-09"
    assert set(table["aesthetic_source"]) == {"reward_model:2026-11-09"}

    weights = tmp_path / "head.safetensors"
    save_file(
        {k: v.contiguous() for k, v in LaionAestheticHead(dim).state_dict().items()}, str(weights)
    )
    from style_pipeline.models import load_model

    name = load_model(cfg.clip).model_name
    cfg = cfg.model_copy(
        update={
            "scorecard": cfg.scorecard.model_copy(
                update={"aesthetic_weights": str(weights), "aesthetic_clip_model": name}
            )
        }
    )
    _, facts = score_day(frames, quality, embeddings, store, DAY, cfg, _theme())
    assert facts.aesthetic_source == "laion-mlp"


def test_bad_inputs_get_reasons_and_the_day_goes_on(day):
    frames, quality, embeddings, store, cfg = day
    store.put_bytes(b"not a jpeg", frames["path"][0])
    table, facts = score_day(
        frames,
        quality.filter(pl.col("frame_id") != "f1"),
        embeddings.filter(pl.col("frame_id") != "f2"),
        store,
        DAY,
        cfg,
        _theme(),
    )
    reasons = dict(zip(table["frame_id"], table["reasons"].to_list(), strict=True))
    assert "unreadable_frame" in reasons["f0"]
    assert "no_quality_scores" in reasons["f1"]
    assert "no_embedding" in reasons["f2"]
    assert table.filter(pl.col("frame_id") == "f3")["q_tech"][0] > 0
    assert facts.reasons["no_embedding"] == 1


def test_theme_floor_and_a_changed_clip_model(day):
    frames, quality, embeddings, store, cfg = day
    strict = _theme().model_copy(
        update={
            "constraints": _theme().constraints.model_copy(
                update={"q_tech_floor": 1.0, "orientation": "portrait"}
            )
        }
    )
    table, facts = score_day(frames, quality, embeddings, store, DAY, cfg, strict)
    assert not table["passed"].any()
    assert facts.reasons == {"low_q_tech": 4, "wrong_orientation": 4}
    assert np.unique(table["theme_hash"]).tolist() == [strict.theme_hash()]
    other = embeddings.with_columns(pl.lit("ViT-X@y").alias("model_id"))
    with pytest.raises(ValueError, match="re-materialize embeddings"):
        score_day(frames, quality, other, store, DAY, cfg, _theme())
