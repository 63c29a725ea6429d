"""Captioning group: the fine-tuned caption model and ontology-constrained captions.

Stages are imported inside each asset: loading the code location (the webserver,
the daemon, every step's subprocess) then imports no model library, and a step pays
only for the libraries of its own stage. Whatever ``captions`` logs, raises or records
goes through :func:`style_pipeline.redaction.redact` first: the event log keeps it.
"""

import time
import traceback

import dagster as dg
import polars as pl

from style_pipeline.contracts.captioning import CaptionModelDocument
from style_pipeline.contracts.curation import Ontology
from style_pipeline.defs.metadata import counts_by, sample_table, table_metadata
from style_pipeline.defs.ownership import group_options
from style_pipeline.defs.partitions import MAY_BE_MISSING
from style_pipeline.defs.resources import SettingsResource, StorageResource
from style_pipeline.redaction import redact

CAPTIONING = group_options("captioning")


# A quiet day (no drops) has no ontology or curated_frames of its own, while the nightly
# run still trains on the window: those inputs may be missing (None).


def day_ontology(context: dg.AssetExecutionContext, ontology: dict | None, settings) -> Ontology:
    """The day's ontology snapshot, or on a quiet day the vocabulary in force now."""
    if ontology is not None:
        return Ontology.model_validate(ontology["ontology"])
    from style_pipeline.stages.ontology import snapshot_ontology

    context.log.info(f"no ontology for {context.partition_key} (a quiet day): the one in force")
    return snapshot_ontology(settings.curation)[0].ontology


@dg.asset(
    **CAPTIONING,
    kinds={"peft", "json"},
    io_manager_key="json_io_manager",
    ins={"ontology": dg.AssetIn(metadata=MAY_BE_MISSING)},
)
def caption_model(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    ontology: dict | None,
) -> dg.Output[CaptionModelDocument]:
    """BLIP LoRA fine-tuned on the seed captions; reused while seeds and config are unchanged."""
    from style_pipeline.stages.caption_model import ensure_caption_model

    started = time.perf_counter()
    loaded = settings.load()
    document, facts = ensure_caption_model(
        day_ontology(context, ontology, loaded),
        storage.store(),
        loaded.captioning,
        log=context.log.info,
        log_every_n_steps=loaded.training.log_every_n_steps,
    )
    if document.base_profile == "tiny":
        context.log.warning("caption model base is the TINY random-init BLIP (no pretrained cache)")
    return dg.Output(
        document, metadata={**facts, "seconds": round(time.perf_counter() - started, 3)}
    )


@dg.asset(
    **CAPTIONING,
    kinds={"transformers", "parquet"},
    deps=["caption_model"],
    ins={
        "curated_frames": dg.AssetIn(metadata=MAY_BE_MISSING),
        "ontology": dg.AssetIn(metadata=MAY_BE_MISSING),
        # a day (or a deployment) without faces found: captions name no character
        "characters": dg.AssetIn(metadata=MAY_BE_MISSING),
    },
)
def captions(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    curated_frames: pl.DataFrame | None,
    ontology: dict | None,
    characters: pl.DataFrame | None,
) -> dg.Output[pl.DataFrame]:
    """A validated, ontology-constrained caption with the trigger word for every kept frame."""
    from style_pipeline.stages.captions import (
        CAPTION_SCHEMA,
        CheckModels,
        caption_partition,
        character_specs,
    )

    started = time.perf_counter()
    loaded = settings.load()
    config = loaded.captioning.caption
    if curated_frames is None:
        context.log.info(f"no curated frames on {context.partition_key} (a quiet day): no captions")
        empty = pl.DataFrame(schema=CAPTION_SCHEMA)
        return dg.Output(empty, metadata={**table_metadata(empty), "quiet_day": True})
    secret_env = [config.endpoint.api_key_env]
    specs = character_specs(characters, loaded.characters)
    if specs is None:
        context.log.info("no characters table (or characters disabled): no character named")
    try:
        table, facts = caption_partition(
            curated_frames,
            day_ontology(context, ontology, loaded),
            storage.store(),
            config,
            characters=characters,
            specs=specs,
            models=CheckModels(
                loaded.curation.clip, loaded.curation.embeddings.cache_prefix, loaded.training
            ),
        )
    except Exception as exc:  # any error text (a remote body, a URL) lands in the event log
        trace = redact(traceback.format_exc(), secret_env)
        raise dg.Failure(
            description=redact(f"{type(exc).__name__}: {exc}", secret_env),
            metadata={"traceback": dg.MetadataValue.text(trace)},
        ) from None  # the unredacted chain would be stored with the failure
    for row in table.filter(~pl.col("valid")).head(20).iter_rows(named=True):
        context.log.warning(
            redact(f"caption of {row['frame_id']} flagged: {row['violations']}", secret_env)
        )
    for row in table.filter(pl.col("still_mismatched")).head(20).iter_rows(named=True):
        context.log.warning(
            redact(
                f"caption of {row['frame_id']} does not match its frame after "
                f"{row['recaption_attempts']} re-caption(s): {row['caption']!r}",
                secret_env,
            )
        )
    if facts.get("cache_rewritten"):
        context.log.warning(
            f"{facts['cache_rewritten']} unreadable caption cache entries were treated as "
            f"misses and rewritten: {facts.get('cache_rewritten_keys', '')}"
        )
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            **facts,
            "by_source": counts_by(table, "source"),
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(
                table, ["frame_id", "caption", "valid", "caption_mismatch", "token_count"]
            ),
        },
    )
