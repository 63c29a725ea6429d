"""Stage ``captions``: a validated, ontology-constrained caption for every kept frame.

With the day's ``characters`` table, a frame's matched characters are named: their trigger
words follow the style trigger (largest face first) and the ``characters`` column lists them.

Captions are fitted to (and counted with) the real tokenizers of the training preset's text
encoders (:mod:`style_pipeline.captioning.tokens`), and checked against their frames
(:mod:`style_pipeline.captioning.agreement`: CLIP, BLIP ITM when available) with a
re-caption of each mismatch; the frames' CLIP vectors come from the embeddings cache when
the curation already computed them with the same model.

Facts become asset metadata kept in the Dagster instance, so their text is redacted
(:func:`style_pipeline.redaction.redact`) with the endpoint's key variable in view.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from style_pipeline.captioning.agreement import AgreementChecker
from style_pipeline.captioning.characters import allowed_phrases, named_characters, trigger_words
from style_pipeline.captioning.factory import make_captioner
from style_pipeline.captioning.pipeline import caption_images
from style_pipeline.captioning.remote import OpenAICompatibleCaptioner
from style_pipeline.captioning.tokens import TokenBudget, family_limits, load_encoder_tokenizers
from style_pipeline.captioning.vocabulary import (
    caption_words,
    ontology_categories,
    ontology_vocabulary,
)
from style_pipeline.contracts.captioning import CaptionConfig, CaptionRecord
from style_pipeline.contracts.characters import CharacterSettings, CharacterSpec
from style_pipeline.contracts.curation import Ontology
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.contracts.training import TrainingSettings
from style_pipeline.curation.character_refs import load_specs
from style_pipeline.curation.embeddings import EmbeddingCache
from style_pipeline.paths import resolve_local
from style_pipeline.redaction import redact
from style_pipeline.stages import FactValue
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema

CAPTION_SCHEMA = polars_schema(CaptionRecord)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckModels:
    """Where the caption checks and token counts find their models.

    ``clip``: the curation's CLIP (its vectors are reused from ``embedding_cache``);
    ``training``: the training settings whose preset names the target text encoders.
    """

    clip: ModelConfig | None = None
    embedding_cache: str = layout.EMBEDDING_CACHE
    training: TrainingSettings | None = None


def kept_frames(curated: pl.DataFrame) -> pl.DataFrame:
    """The kept rows of ``curated_frames``, in frame_id order."""
    return curated.filter(pl.col("keep")).sort("frame_id")


def character_specs(
    characters: pl.DataFrame | None, settings: CharacterSettings | None
) -> dict[str, CharacterSpec] | None:
    """Specs of ``settings.references_dir`` when captions should name characters: a
    ``characters`` table is there and the feature is on; else None (captions as before)."""
    if characters is None or settings is None or not settings.enabled:
        return None
    return load_specs(resolve_local(settings.references_dir))


def caption_partition(
    curated: pl.DataFrame,
    ontology: Ontology,
    store: Store,
    config: CaptionConfig,
    characters: pl.DataFrame | None = None,
    specs: Mapping[str, CharacterSpec] | None = None,
    models: CheckModels | None = None,
) -> tuple[pl.DataFrame, dict[str, FactValue]]:
    """Caption every kept frame; each caption is post-processed, validated and checked.

    ``characters`` (the day's ``characters`` table) and ``specs`` (by name) name each
    frame's matched characters; either None: no character is named. ``models``: the CLIP
    of the agreement check and the training settings whose text encoders count tokens
    (None: no check, the approximate counter).

    Facts: the captioner's own metadata, counts of captions, valid and repaired ones,
    the trigger word, captions naming a character (and how many per character), the
    agreement check (mismatched, re-captioned, mean scores), token counts (max, mean,
    truncated) and the endpoint cache entries that were unreadable (treated as misses and
    rewritten: ``cache_rewritten`` and their keys).
    """
    models = models or CheckModels()
    categories = ontology_categories(ontology)
    selected = make_captioner(config, categories=categories, store=store)
    rows = kept_frames(curated)
    named: dict[str, list[str]] = {}
    if characters is not None and specs is not None:
        named = named_characters(characters.iter_rows(named=True))
    budget, token_facts = token_budget(config, models.training)
    checker: AgreementChecker | None = None
    check_facts: dict[str, FactValue] = {"caption_check": "skipped: no frames"}
    if not rows.is_empty():
        checker, check_facts = agreement_checker(config, models.clip, ontology)
    if rows.is_empty():
        table = pl.DataFrame(schema=CAPTION_SCHEMA)
    else:
        table, cached = _caption_rows(
            rows, ontology, selected, store, config, named, specs or {}, budget, checker,
            models.embedding_cache,
        )  # fmt: skip
        if checker is not None:
            check_facts["image_vectors_from_embeddings_cache"] = cached
    valid = len(table) - len(table.filter(~pl.col("valid")))
    per_character: dict[str, int] = {}
    for names in table["characters"].to_list():
        for name in names:
            per_character[name] = per_character.get(name, 0) + 1
    facts: dict[str, FactValue] = {
        **selected.metadata(),
        "captions": len(table),
        "valid": valid,
        "repaired": int(table["repairs"].list.len().gt(0).sum() or 0) if len(table) else 0,
        "trigger_word": config.trigger_word,
        "caption_style": config.style,
        "captions_with_characters": int(table["characters"].list.len().gt(0).sum() or 0)
        if len(table)
        else 0,
        "by_character": dict(sorted(per_character.items())),
        **check_facts,
        **check_summary(table),
        **token_facts,
        **token_summary(table),
    }
    if isinstance(selected.captioner, OpenAICompatibleCaptioner):
        rewritten = selected.captioner.unreadable_cache_keys
        facts["cache_rewritten"] = len(rewritten)
        if rewritten:
            facts["cache_rewritten_keys"] = ", ".join(rewritten[:20])
    secret_env = [config.endpoint.api_key_env]
    return table, {k: redact(v, secret_env) if isinstance(v, str) else v for k, v in facts.items()}


def token_budget(
    config: CaptionConfig, training: TrainingSettings | None
) -> tuple[TokenBudget, dict[str, FactValue]]:
    """The tokenizers of the training preset's text encoders (only their folders are read:
    no UNet, no encoder weights), or the approximate counter and why."""
    if config.token_counter == "approx" or training is None:
        why = "token_counter approx" if config.token_counter == "approx" else "no training settings"
        budget = TokenBudget.approximate(config.max_tokens)
        return budget, {"token_encoders": budget.describe(), "token_counter_reason": why}
    from style_pipeline.models.diffusion import resolve_diffusion
    from style_pipeline.training.presets import load_preset

    preset = load_preset(training.preset)
    resolved = resolve_diffusion(
        preset.profile, preset.pretrained, resolve_local(training.model_cache_dir),
        preset.seed, preset.model_family,
    )  # fmt: skip
    limits = family_limits(preset.model_family, getattr(preset, "max_sequence_length", None))
    budget = TokenBudget(load_encoder_tokenizers(resolved.path, limits))
    reason = f"preset {training.preset} ({preset.model_family}, {resolved.profile} {resolved.path})"
    return budget, {"token_encoders": budget.describe(), "token_counter_reason": reason}


def agreement_checker(
    config: CaptionConfig, clip: ModelConfig | None, ontology: Ontology
) -> tuple[AgreementChecker | None, dict[str, FactValue]]:
    """The checker ``config.check`` asks for (CLIP, + ITM per ``use_itm``), or None and why."""
    check = config.check
    if check.enabled == "off":
        return None, {"caption_check": "skipped: check.enabled off"}
    if clip is None:
        return None, {"caption_check": "skipped: no CLIP model config given"}
    from style_pipeline.models.blip_itm import itm_pretrained_or_none, load_blip_itm
    from style_pipeline.models.clip import load_model

    loaded = load_model(clip)
    if check.enabled == "auto" and loaded.profile_used != "pretrained":
        why = "skipped: check.enabled auto and CLIP is the random-init tiny model"
        log.warning("caption check %s (%s)", why, loaded.fallback_reason or "profile tiny")
        return None, {"caption_check": why}
    itm = None
    itm_reason = "off"
    if check.use_itm == "on":
        itm = load_blip_itm(check.itm_model, caption_words(ontology))
        itm_reason = f"on ({itm.profile_used})"
    elif check.use_itm == "auto":
        itm, why = itm_pretrained_or_none(check.itm_model)
        itm_reason = f"auto: {why}" if itm is not None else f"auto, not used: {why}"
    checker = AgreementChecker(loaded, check, itm)
    return checker, {"caption_check": "on", "itm": itm_reason, **checker.metadata()}


def _mean(table: pl.DataFrame, column: str) -> float | None:
    value = table[column].drop_nulls().mean() if len(table) else None
    return round(float(value), 4) if isinstance(value, int | float) else None


def check_summary(table: pl.DataFrame) -> dict[str, FactValue]:
    """Mismatch, re-caption and mean agreement facts of a captions table (0 / '' if none)."""
    recaptioned = int(table["first_caption"].is_not_null().sum()) if len(table) else 0
    facts: dict[str, FactValue] = {
        "mismatched": int(table["caption_mismatch"].sum() or 0) if len(table) else 0,
        "still_mismatched": int(table["still_mismatched"].sum() or 0) if len(table) else 0,
        "recaptioned": recaptioned,
        "recaption_attempts": int(table["recaption_attempts"].sum() or 0) if len(table) else 0,
    }
    for column in ("clip_similarity", "clip_margin", "itm_score"):
        mean = _mean(table, column)
        facts[f"mean_{column}"] = "" if mean is None else mean
    return facts


def token_summary(table: pl.DataFrame) -> dict[str, FactValue]:
    """Token count max/mean (the most of any target encoder per caption) and truncations."""
    counts = table["token_count"].drop_nulls().to_list() if len(table) else []
    return {
        "token_count_max": max(counts, default=0),
        "token_count_mean": round(sum(counts) / len(counts), 2) if counts else 0.0,
        "truncated": int(table["truncated"].sum() or 0) if len(table) else 0,
    }


def cached_vectors(
    store: Store, paths: list[Path], model_id: str, dim: int, prefix: str
) -> np.ndarray | None:
    """The frames' CLIP vectors from the embeddings cache (by file sha256 and model id) when
    every one is there; else None (the checker embeds the images itself)."""
    cache = EmbeddingCache(store, model_id, dim, prefix=prefix)
    vectors = []
    for path in paths:
        vector = cache.get(hashlib.sha256(path.read_bytes()).hexdigest())
        if vector is None:
            return None
        vectors.append(vector)
    return np.stack(vectors).astype(np.float32)


def _caption_rows(
    rows, ontology, selected, store, config, named, specs, budget, checker, embedding_cache
) -> tuple[pl.DataFrame, bool]:
    labels = [_labels_by_category(x) for x in rows["labels"].to_list()]
    names = [named.get(frame_id, []) for frame_id in rows["frame_id"]]
    vectors = None
    with store.local_copies(rows["path"].to_list()) as local:
        images = [_rgb(local[p]) for p in rows["path"]]
        if checker is not None:
            paths = [local[p] for p in rows["path"]]
            clip = checker.clip
            vectors = cached_vectors(store, paths, clip.model_id, clip.dim, embedding_cache)
    captions = caption_images(
        selected, images, config, ontology_vocabulary(ontology), labels=labels,
        characters=[trigger_words(n, specs) for n in names], allowed=allowed_phrases(specs),
        budget=budget, checker=checker, image_vectors=vectors,
    )  # fmt: skip
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
            "characters": names,
            "caption_mismatch": [c.caption_mismatch for c in captions],
            "still_mismatched": [c.still_mismatched for c in captions],
            "clip_similarity": [c.clip_similarity for c in captions],
            "clip_margin": [c.clip_margin for c in captions],
            "itm_score": [c.itm_score for c in captions],
            "recaption_attempts": [c.recaption_attempts for c in captions],
            "first_caption": [c.first_caption for c in captions],
            "first_clip_similarity": [c.first_clip_similarity for c in captions],
            "first_itm_score": [c.first_itm_score for c in captions],
            "token_count": [c.token_count for c in captions],
            "token_counts": [list(c.token_counts) for c in captions],
            "truncated": [c.truncated for c in captions],
        },
        schema=CAPTION_SCHEMA,
    )
    return table, vectors is not None


def _labels_by_category(labels: list[dict] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in sorted(labels or [], key=lambda x: -x["score"]):
        out.setdefault(item["category"], []).append(item["term"])
    return out


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")
