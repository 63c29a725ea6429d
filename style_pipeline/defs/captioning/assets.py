"""Captioning group: the fine-tuned caption model and ontology-constrained captions."""

import time

import dagster as dg
import polars as pl

from style_pipeline.captioning import steps
from style_pipeline.captioning.vocabulary import caption_words
from style_pipeline.contracts.curation import Ontology
from style_pipeline.defs.metadata import counts_by, sample_table
from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.resources import SettingsResource, StorageResource
from style_pipeline.paths import resolve_local

CAPTIONING = dict(partitions_def=DAILY_PARTITIONS, group_name="captioning", code_version="1")


@dg.asset(**CAPTIONING, kinds={"peft", "json"}, io_manager_key="json_io_manager")
def caption_model(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    ontology: dict,
) -> dg.Output[dict]:
    """BLIP LoRA fine-tuned on the seed captions; reused while seeds and config are unchanged."""
    started = time.perf_counter()
    cfg = settings.load().captioning
    words = caption_words(Ontology.model_validate(ontology["ontology"]))
    result, trained = steps.ensure_caption_model(
        storage.store(), resolve_local(cfg.seed_captions_dir), cfg, words, log=context.log.info
    )
    meta = result.metadata
    if meta.get("base_profile") == "tiny":
        context.log.warning("caption model base is the TINY random-init BLIP (no pretrained cache)")
    return dg.Output(
        {"version": result.version, "key": result.key, "trained": trained, **meta},
        metadata={
            "version": result.version,
            "trained_now": trained,
            "base_model": meta["base_model"],
            "base_profile": meta.get("base_profile", ""),
            "seed_pairs": meta["num_pairs"],
            "steps": meta["steps"],
            "final_loss": float(meta["final_loss"]),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


@dg.asset(**CAPTIONING, kinds={"transformers", "parquet"}, deps=["caption_model"])
def captions(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    curated_frames: pl.DataFrame,
    ontology: dict,
) -> dg.Output[pl.DataFrame]:
    """A validated, ontology-constrained caption with the trigger word for every kept frame."""
    started = time.perf_counter()
    cfg = settings.load().captioning.caption
    table, selected = steps.caption_partition(
        curated_frames, Ontology.model_validate(ontology["ontology"]), storage.store(), cfg
    )
    invalid = table.filter(~pl.col("valid"))
    for row in invalid.head(20).iter_rows(named=True):
        context.log.warning(f"caption of {row['frame_id']} flagged: {row['violations']}")
    return dg.Output(
        table,
        metadata={
            **selected.metadata(),
            "captions": len(table),
            "valid": len(table) - len(invalid),
            "repaired": int(table["repairs"].list.len().gt(0).sum() or 0) if len(table) else 0,
            "by_source": counts_by(table, "source"),
            "trigger_word": cfg.trigger_word,
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(table, ["frame_id", "caption", "valid"]),
        },
    )
