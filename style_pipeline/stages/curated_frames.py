"""The ``curated_frames`` stage: a keep/drop decision with a reason for every frame of the day.

Eligible = passed the quality gate and not a duplicate; the selection
(``curation/selection.py``) trades quality for coverage under the budget; the day's
overrides lock frames in or out. Every frame is labelled zero-shot with the ontology,
using the same CLIP model that embedded it.

With the day's theme and ``scores`` (and ``ranking``), frames failing the theme's hard
constraints are ineligible, merit is total_prelim plus the hero / Elo standing, and the
greedy also weighs role fit and per-axis coverage (``stages/curated_frames_theme.py``);
kept frames get a role, every frame its ``axis:value`` tags, and the table the day's
low-coverage prompts. Without scores the stage decides exactly as before.

With the day's ``characters`` table (one row per face, labelled with a character or an
``unknown_<n>`` group), every frame lists its characters, the facts count them, and each
character's min_share / max_share of the kept set (``character.yaml``) bounds the
selection, in the plain and the theme path alike. Without it the stage decides as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np
import polars as pl

from style_pipeline.contracts.characters import CharacterSpec
from style_pipeline.contracts.curation import (
    CurationSettings,
    Ontology,
    OntologySnapshot,
    Overrides,
    SelectionConfig,
)
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.contracts.themes import Theme
from style_pipeline.curation import coverage
from style_pipeline.curation.character_counts import CharacterCount
from style_pipeline.curation.clustering import knn_from_frame
from style_pipeline.curation.embeddings import embed_texts, vectors_from_frame
from style_pipeline.curation.ontology import build_label_bank, zero_shot_by_category
from style_pipeline.curation.overrides import overrides_for_partition
from style_pipeline.curation.selection import (
    SelectionResult,
    decisions_frame,
    ineligibility_reasons,
    select_frames,
)
from style_pipeline.models import load_model
from style_pipeline.stages.curated_frames_theme import (
    AxisFn,
    PaletteFn,
    ThemeInputs,
    theme_columns,
    theme_facts,
    theme_inputs,
)
from style_pipeline.storage.store import Store

LabelFn = Callable[[np.ndarray], list[dict[str, list[tuple[str, float]]]]]
CHARACTERS_COLUMN = pl.List(pl.String())  # last column: the frame's characters and groups
CURATED_EXTRA = {
    "path": pl.String(),
    "media_id": pl.String(),
    "labels": pl.List(
        pl.Struct({"category": pl.String(), "term": pl.String(), "score": pl.Float64()})
    ),
}


@dataclass(frozen=True)
class DayTables:
    """The upstream tables of one day's ``curated_frames``."""

    frames: pl.DataFrame
    quality_scores: pl.DataFrame
    dedup_set: pl.DataFrame
    embeddings: pl.DataFrame
    clusters: pl.DataFrame
    scores: pl.DataFrame | None = None  # the theme's scorecard; None: decide as before
    ranking: pl.DataFrame | None = None
    characters: pl.DataFrame | None = None  # faces' labels; None: not known that day


@dataclass(frozen=True)
class CuratedFacts:
    """What the ``curated_frames`` asset reports besides the table."""

    frames: int
    kept: int
    coverage: float
    lock_in: int
    exclude: int
    unknown_override_ids: tuple[str, ...]  # override ids that are not frames of the day
    notes: tuple[str, ...]
    roles: dict[str, int] = field(default_factory=dict)  # role -> kept frames (theme only)
    axis_coverage: dict[str, dict[str, int]] = field(default_factory=dict)
    low_coverage: dict[str, str] = field(default_factory=dict)  # axis -> prompt
    characters: dict[str, CharacterCount] = field(default_factory=dict)  # name -> counts
    unknown_groups: dict[str, CharacterCount] = field(default_factory=dict)  # unknown_<n>
    character_notes: tuple[str, ...] = ()  # share limits the kept set misses, and why


def curate_day(
    tables: DayTables,
    ontology: OntologySnapshot,
    overrides_store: Store,
    partition: str,
    config: CurationSettings,
    *,
    theme: Theme | None = None,
    frame_store: Store | None = None,
    character_specs: Mapping[str, CharacterSpec] | None = None,
) -> tuple[pl.DataFrame, CuratedFacts]:
    """The day's ``curated_frames`` and facts (``overrides_store``: holds ``<day>.yml``).

    ``theme`` with ``tables.scores`` turns on the theme's selection; ``frame_store``
    (holding the frame JPEGs) adds the palette axis; ``character_specs`` with
    ``tables.characters`` bound each character's share of the kept frames.
    """
    overrides = overrides_for_partition(overrides_store, partition, prefix="")
    label_fn = clip_labeller(config.clip, ontology.ontology, tables.embeddings)
    axis_fn = palette_fn = None
    if theme is not None and tables.scores is not None:
        axis_fn = theme_axis_labeller(config.clip, theme, tables.embeddings)
        if frame_store is not None:
            palette_fn = frame_palettes(frame_store, config.selection.seed)
    table, result = curate_partition(
        tables, config.selection, overrides, label_fn, theme=theme, axis_fn=axis_fn,
        palette_fn=palette_fn, character_specs=character_specs,
    )  # fmt: skip
    facts = CuratedFacts(
        frames=len(table),
        kept=int(table["keep"].sum() or 0),
        coverage=float(result.coverage) if result.coverage is not None else 0.0,
        lock_in=len(overrides.lock_in),
        exclude=len(overrides.exclude),
        unknown_override_ids=tuple(result.unknown_override_ids),
        notes=tuple(result.notes),
        **theme_facts(table, theme if tables.scores is not None else None),
        characters=result.characters,
        unknown_groups=result.unknown_groups,
        character_notes=tuple(result.character_notes),
    )
    return table, facts


def curate_partition(
    tables: DayTables,
    config: SelectionConfig,
    overrides: Overrides,
    label_fn: LabelFn | None = None,
    *,
    theme: Theme | None = None,
    axis_fn: AxisFn | None = None,
    palette_fn: PaletteFn | None = None,
    character_specs: Mapping[str, CharacterSpec] | None = None,
) -> tuple[pl.DataFrame, SelectionResult]:
    """Decisions for the frames of one day from its upstream tables (``frames`` order).

    ``label_fn`` maps unit image embeddings to ontology labels per category; with a
    ``theme`` and ``tables.scores``, ``axis_fn`` maps them to the theme's zero-shot axis
    tags and ``palette_fn`` frame keys to palette names (either may be absent). With
    ``tables.characters``, ``character_specs`` (by name) give the share limits.
    """
    frames, clusters = tables.frames, tables.clusters
    ids = frames["frame_id"].to_list()
    q = _aligned(tables.quality_scores, ids, ["passed", "reasons", "score"])
    d = _aligned(tables.dedup_set, ids, ["duplicate_of"])
    e = _aligned(tables.embeddings, ids, ["embedding"])
    c = _aligned(clusters, ids, ["cluster", "outlier_score"])
    ineligible = ineligibility_reasons(
        ids, q["passed"].to_list(), q["reasons"].to_list(), d["duplicate_of"].to_list()
    )
    vectors = vectors_from_frame(e)
    quality = q["score"].to_numpy().astype(np.float64)
    characters = frame_characters(tables.characters, ids)
    extra = None
    if theme is not None and tables.scores is not None:
        extra = _theme_inputs(tables, ids, vectors, theme, config, axis_fn, palette_fn)
        for fid, why in extra.ineligible.items():
            ineligible[fid] = f"{ineligible[fid]}; {why}" if fid in ineligible else why
        quality = extra.merit
    result = select_frames(
        ids,
        quality,
        vectors,
        c["cluster"].to_numpy(),
        config,
        ineligible=ineligible,
        outlier_scores=c["outlier_score"].to_numpy().astype(np.float64),
        overrides=overrides,
        knn=knn_from_frame(_aligned(clusters, ids, list(clusters.columns))) if ids else None,
        theme=None if extra is None else extra.terms,
        characters=characters,
        character_specs=character_specs,
    )
    table = decisions_frame(result)
    labels = label_fn(vectors) if (label_fn is not None and ids) else [{} for _ in ids]
    flat = [
        [
            {"category": cat, "term": t, "score": float(sc)}
            for cat, terms in x.items()
            for t, sc in terms
        ]
        for x in labels
    ]
    table = table.with_columns(
        pl.Series("path", frames["path"].to_list(), dtype=pl.String),
        pl.Series("media_id", frames["media_id"].to_list(), dtype=pl.String),
        pl.Series("labels", flat, dtype=CURATED_EXTRA["labels"]),
    )
    table = table.with_columns(theme_columns(result, theme, extra))
    listed = characters if characters is not None else [[] for _ in ids]
    return table.with_columns(pl.Series("characters", listed, dtype=CHARACTERS_COLUMN)), result


def frame_characters(characters: pl.DataFrame | None, ids: list[str]) -> list[list[str]] | None:
    """Per frame (``ids`` order): its faces' labels, names and ``unknown_<n>``, sorted.

    Faces without a label are left out; None without a ``characters`` table.
    """
    if characters is None:
        return None
    missing = {"frame_id", "label"} - set(characters.columns)
    if missing:
        raise ValueError(f"characters table lacks column(s) {sorted(missing)}")
    labelled = characters.filter(pl.col("label").is_not_null())
    by_frame: dict[str, set[str]] = {}
    for fid, label in labelled.select("frame_id", "label").iter_rows():
        by_frame.setdefault(fid, set()).add(label)
    return [sorted(by_frame.get(fid, ())) for fid in ids]


def _theme_inputs(tables, ids, vectors, theme, config, axis_fn, palette_fn) -> ThemeInputs:
    scores = _aligned(tables.scores, ids, list(tables.scores.columns))
    quality = _aligned(
        tables.quality_scores, ids, ["mean_luminance", "face_count", "width", "height"]
    )
    zero_shot = axis_fn(vectors) if (axis_fn is not None and ids) else [{} for _ in ids]
    paths = tables.frames["path"].to_list()
    palettes = palette_fn(paths) if palette_fn is not None else [None for _ in ids]
    return theme_inputs(ids, scores, tables.ranking, quality, theme, config, zero_shot, palettes)


def clip_labeller(model: ModelConfig, ontology: Ontology, embeddings: pl.DataFrame) -> LabelFn:
    """Zero-shot ontology labels with the same CLIP model that embedded the frames."""

    def label(vectors: np.ndarray):
        loaded = load_model(model)
        if len(embeddings) and embeddings["model_id"][0] != loaded.model_id:
            raise ValueError(
                f"embeddings were made with {embeddings['model_id'][0]}, "
                f"labels would use {loaded.model_id}: re-materialize embeddings"
            )
        bank = build_label_bank(ontology, lambda texts: embed_texts(loaded, texts))
        return zero_shot_by_category(vectors, bank, ontology)

    return label


def theme_axis_labeller(model: ModelConfig, theme: Theme, embeddings: pl.DataFrame) -> AxisFn:
    """Zero-shot tags on the theme's axes, with the model that embedded the frames."""

    def label(vectors: np.ndarray) -> list[dict[str, str]]:
        loaded = load_model(model)
        if len(embeddings) and embeddings["model_id"][0] != loaded.model_id:
            raise ValueError(
                f"embeddings were made with {embeddings['model_id'][0]}, "
                f"theme axes would use {loaded.model_id}: re-materialize embeddings"
            )
        banks = coverage.axis_text_banks(theme, lambda texts: embed_texts(loaded, texts))
        return coverage.zero_shot_axes(vectors, theme, banks)

    return label


def frame_palettes(store: Store, seed: int = 0) -> PaletteFn:
    """Palette names from the frame JPEGs in ``store`` (decoded at 1/4 size)."""

    def palettes(keys: list[str]) -> list[str | None]:
        out: list[str | None] = []
        for key in keys:
            data = np.frombuffer(store.read_bytes(key), dtype=np.uint8)
            bgr = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_4)
            if bgr is None:
                raise ValueError(f"frame {key} is not a decodable image")
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            out.append(coverage.palette_name(*coverage.dominant_colours(rgb, seed=seed)))
        return out

    return palettes


def _aligned(table: pl.DataFrame, ids: list[str], columns: list[str]) -> pl.DataFrame:
    """``table``'s ``columns`` in the order of ``ids``; a frame missing upstream is an error."""
    missing = set(ids) - set(table["frame_id"].to_list())
    if missing:
        raise ValueError(f"{len(missing)} frame(s) missing upstream, e.g. {sorted(missing)[0]}")
    if table["frame_id"].n_unique() != len(table):
        raise ValueError("frame ids are not unique in an upstream table")
    cols = ["frame_id", *[c for c in columns if c != "frame_id"]]
    order = pl.DataFrame({"frame_id": pl.Series(ids, dtype=pl.String)})
    return order.join(table.select(cols), on="frame_id", how="left", maintain_order="left")
