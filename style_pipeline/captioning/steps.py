"""Partition-level captioning steps used by the ``caption_model`` and ``captions`` assets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl
from PIL import Image

from style_pipeline.captioning.factory import SelectedCaptioner, make_captioner
from style_pipeline.captioning.finetune import (
    PREFIX,
    FinetuneResult,
    data_fingerprint,
    finetune_caption_model,
    load_seed_pairs,
    read_caption_model_metadata,
)
from style_pipeline.captioning.pipeline import caption_images
from style_pipeline.captioning.vocabulary import ontology_categories, ontology_vocabulary
from style_pipeline.contracts.captioning import (
    CaptionConfig,
    CaptioningSettings,
)
from style_pipeline.contracts.curation import Ontology
from style_pipeline.models.blip import load_blip
from style_pipeline.storage.store import Store

CAPTION_SCHEMA = pl.Schema(
    {
        "frame_id": pl.String(),
        "path": pl.String(),
        "caption": pl.String(),
        "raw": pl.String(),
        "source": pl.String(),
        "model": pl.String(),
        "cached": pl.Boolean(),
        "valid": pl.Boolean(),
        "violations": pl.List(pl.String()),
        "repairs": pl.List(pl.String()),
    }
)


def ensure_caption_model(
    store: Store,
    seed_dir: Path,
    config: CaptioningSettings,
    words: list[str],
    log: Callable[[str], None] | None = None,
) -> tuple[FinetuneResult, bool]:
    """The caption-model version for the current seed data, base model and config.

    An existing complete version trained on the same inputs is reused (``False``);
    otherwise BLIP is fine-tuned with PEFT and a new version written (``True``).
    """
    pairs = load_seed_pairs(seed_dir)
    base = load_blip(config.caption.blip.model, words)
    data_hash, config_hash = data_fingerprint(pairs), config.finetune.fingerprint()
    for key in sorted(store.list(PREFIX), reverse=True):
        try:
            meta = read_caption_model_metadata(store, key)
        except FileNotFoundError:
            continue  # an interrupted version without metadata is not complete
        same = (meta["data_hash"], meta["config_hash"], meta["base_model"])
        if same == (data_hash, config_hash, base.model_id):
            return FinetuneResult(meta["version"], key, meta), False
    return finetune_caption_model(store, pairs, base, config.finetune, log=log), True


def kept_frames(curated: pl.DataFrame) -> pl.DataFrame:
    """The kept rows of ``curated_frames``, in frame_id order."""
    return curated.filter(pl.col("keep")).sort("frame_id")


def caption_partition(
    curated: pl.DataFrame,
    ontology: Ontology,
    store: Store,
    config: CaptionConfig,
) -> tuple[pl.DataFrame, SelectedCaptioner]:
    """Caption every kept frame; each caption is post-processed and validated."""
    categories = ontology_categories(ontology)
    selected = make_captioner(config, categories=categories, store=store)
    rows = kept_frames(curated)
    if rows.is_empty():
        return pl.DataFrame(schema=CAPTION_SCHEMA), selected
    labels = [_labels_by_category(x) for x in rows["labels"].to_list()]
    with store.local_copies(rows["path"].to_list()) as local:
        images = [_rgb(local[p]) for p in rows["path"]]
    captions = caption_images(
        selected, images, config, ontology_vocabulary(ontology), labels=labels
    )
    table = pl.DataFrame(
        {
            "frame_id": rows["frame_id"],
            "path": rows["path"],
            "caption": [c.caption for c in captions],
            "raw": [c.raw for c in captions],
            "source": [c.source for c in captions],
            "model": [c.model for c in captions],
            "cached": [c.cached for c in captions],
            "valid": [c.valid for c in captions],
            "violations": [list(c.violations) for c in captions],
            "repairs": [list(c.repairs) for c in captions],
        },
        schema=CAPTION_SCHEMA,
    )
    return table, selected


def _labels_by_category(labels: list[dict] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in sorted(labels or [], key=lambda x: -x["score"]):
        out.setdefault(item["category"], []).append(item["term"])
    return out


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")
