"""Stage ``caption_model``: the BLIP LoRA fine-tuned on the seed captions, reused while
the seed data, the base model and the fine-tune config are unchanged."""

from __future__ import annotations

from collections.abc import Callable

from style_pipeline.captioning.finetune import (
    data_fingerprint,
    finetune_caption_model,
    load_seed_pairs,
    read_caption_model_metadata,
)
from style_pipeline.captioning.vocabulary import caption_words
from style_pipeline.contracts.captioning import CaptioningSettings, CaptionModelDocument
from style_pipeline.contracts.curation import Ontology
from style_pipeline.models.blip import load_blip
from style_pipeline.paths import resolve_local
from style_pipeline.stages import FactValue
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store


def ensure_caption_model(
    ontology: Ontology,
    store: Store,
    config: CaptioningSettings,
    log: Callable[[str], None] | None = None,
    log_every_n_steps: int = 25,
) -> tuple[CaptionModelDocument, dict[str, FactValue]]:
    """The caption-model version for the current seed data, base model and config.

    A fine-tune logs its progress through ``log`` at step 1, every ``log_every_n_steps``-th
    (``training.log_every_n_steps``) and the last step.

    An existing complete version trained on the same inputs is reused (``trained`` False);
    otherwise BLIP is fine-tuned with PEFT and a new version written (``trained`` True).
    """
    pairs = load_seed_pairs(resolve_local(config.seed_captions_dir))
    base = load_blip(config.caption.blip.model, caption_words(ontology))
    data_hash, config_hash = data_fingerprint(pairs), config.finetune.fingerprint()
    for key in sorted(store.list(layout.CAPTION_MODEL), reverse=True):
        try:
            meta = read_caption_model_metadata(store, key)
        except FileNotFoundError:
            continue  # an interrupted version without metadata is not complete
        same = (meta["data_hash"], meta["config_hash"], meta["base_model"])
        if same == (data_hash, config_hash, base.model_id):
            return _document(key, meta, trained=False)
    result = finetune_caption_model(
        store, pairs, base, config.finetune, log=log, log_every_n_steps=log_every_n_steps
    )
    return _document(result.key, result.metadata, trained=True)


def _document(
    key: str, meta: dict, *, trained: bool
) -> tuple[CaptionModelDocument, dict[str, FactValue]]:
    document = CaptionModelDocument(key=key, trained=trained, **meta)
    facts: dict[str, FactValue] = {
        "version": document.version,
        "trained_now": trained,
        "base_model": document.base_model,
        "base_profile": document.base_profile,
        "seed_pairs": document.num_pairs,
        "steps": document.steps,
        "final_loss": float(document.final_loss),
    }
    return document, facts
