"""Stage ``captions``: a validated, ontology-constrained caption for every kept frame.

With the day's ``characters`` table, a frame's matched characters are named: their trigger
words follow the style trigger (largest face first) and the ``characters`` column lists them.

Facts become asset metadata kept in the Dagster instance, so their text is redacted
(:func:`style_pipeline.redaction.redact`) with the endpoint's key variable in view.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl
from PIL import Image

from style_pipeline.captioning.characters import allowed_phrases, named_characters, trigger_words
from style_pipeline.captioning.factory import make_captioner
from style_pipeline.captioning.pipeline import caption_images
from style_pipeline.captioning.remote import OpenAICompatibleCaptioner
from style_pipeline.captioning.vocabulary import ontology_categories, ontology_vocabulary
from style_pipeline.contracts.captioning import CaptionConfig, CaptionRecord
from style_pipeline.contracts.characters import CharacterSettings, CharacterSpec
from style_pipeline.contracts.curation import Ontology
from style_pipeline.curation.character_refs import load_specs
from style_pipeline.paths import resolve_local
from style_pipeline.redaction import redact
from style_pipeline.stages import FactValue
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema

CAPTION_SCHEMA = polars_schema(CaptionRecord)


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
) -> tuple[pl.DataFrame, dict[str, FactValue]]:
    """Caption every kept frame; each caption is post-processed and validated.

    ``characters`` (the day's ``characters`` table) and ``specs`` (by name) name each
    frame's matched characters; either None: no character is named.

    Facts: the captioner's own metadata, counts of captions, valid and repaired ones,
    the trigger word, captions naming a character (and how many per character), and the
    endpoint cache entries that were unreadable (treated as misses and rewritten:
    ``cache_rewritten`` and their keys).
    """
    categories = ontology_categories(ontology)
    selected = make_captioner(config, categories=categories, store=store)
    rows = kept_frames(curated)
    named: dict[str, list[str]] = {}
    if characters is not None and specs is not None:
        named = named_characters(characters.iter_rows(named=True))
    if rows.is_empty():
        table = pl.DataFrame(schema=CAPTION_SCHEMA)
    else:
        table = _caption_rows(rows, ontology, selected, store, config, named, specs or {})
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
        "captions_with_characters": int(table["characters"].list.len().gt(0).sum() or 0)
        if len(table)
        else 0,
        "by_character": dict(sorted(per_character.items())),
    }
    if isinstance(selected.captioner, OpenAICompatibleCaptioner):
        rewritten = selected.captioner.unreadable_cache_keys
        facts["cache_rewritten"] = len(rewritten)
        if rewritten:
            facts["cache_rewritten_keys"] = ", ".join(rewritten[:20])
    secret_env = [config.endpoint.api_key_env]
    return table, {k: redact(v, secret_env) if isinstance(v, str) else v for k, v in facts.items()}


def _caption_rows(rows, ontology, selected, store, config, named, specs) -> pl.DataFrame:
    labels = [_labels_by_category(x) for x in rows["labels"].to_list()]
    names = [named.get(frame_id, []) for frame_id in rows["frame_id"]]
    with store.local_copies(rows["path"].to_list()) as local:
        images = [_rgb(local[p]) for p in rows["path"]]
    captions = caption_images(
        selected, images, config, ontology_vocabulary(ontology), labels=labels,
        characters=[trigger_words(n, specs) for n in names], allowed=allowed_phrases(specs),
    )  # fmt: skip
    return pl.DataFrame(
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
        },
        schema=CAPTION_SCHEMA,
    )


def _labels_by_category(labels: list[dict] | None) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for item in sorted(labels or [], key=lambda x: -x["score"]):
        out.setdefault(item["category"], []).append(item["term"])
    return out


def _rgb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")
