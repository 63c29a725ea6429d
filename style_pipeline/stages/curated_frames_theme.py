"""The theme's part of the ``curated_frames`` stage: merit, roles, axis tags, constraints.

From the day's ``scores`` (and ``ranking`` when judged) this builds what the selection
needs: each frame's merit (total_prelim, plus the hero / alternate / Elo standing), role
probabilities, ``axis -> value`` tags (the theme's zero-shot axes and the measured ones),
and the frames the theme's hard constraints drop, each with its reason codes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from style_pipeline.contracts.curation import SelectionConfig
from style_pipeline.contracts.themes import SCORES, Theme
from style_pipeline.curation import coverage
from style_pipeline.curation.roles import EXTRA, assign_roles, role_counts, role_probabilities
from style_pipeline.curation.selection import SelectionResult
from style_pipeline.curation.theme_greedy import ThemeTerms, axis_terms

AxisFn = Callable[[np.ndarray], list[dict[str, str]]]  # unit image vectors -> zero-shot tags
PaletteFn = Callable[[list[str]], list[str | None]]  # frame keys -> palette names
HERO_BONUS, ALTERNATE_BONUS, ELO_BONUS = 0.25, 0.1, 0.1
ELO_SCALE = 400.0  # Elo points per unit of the (clipped) Elo bonus
THEME_COLUMNS = {  # appended after CURATED_EXTRA; null / empty without a theme
    "role": pl.String(),
    "role_probability": pl.Float64(),
    "role_probs": pl.List(pl.Struct({"role": pl.String(), "p": pl.Float64()})),
    "diversity_tags": pl.List(pl.String()),
    "total_prelim": pl.Float64(),
    "hero": pl.Boolean(),
    "elo": pl.Float64(),
    "low_coverage": pl.List(pl.String()),
}
RANKING_COLUMNS = ("hero", "alternate_rank", "elo", "opener_finalist", "opener_elo", "rationale")


@dataclass(frozen=True)
class ThemeInputs:
    """Per-frame (``frames`` order) inputs of a theme-driven selection."""

    merit: np.ndarray
    total_prelim: np.ndarray
    terms: ThemeTerms
    tags: list[dict[str, str]]
    preference: np.ndarray  # (n, roles): hero 2, alternate 1, opener finalists by opener Elo
    ineligible: dict[str, str]  # frame id -> "failed theme constraints (low_q_tech)"
    ranking: pl.DataFrame  # RANKING_COLUMNS aligned to the frames (nulls when not ranked)


def measured_tags(quality: pl.DataFrame, palettes: Sequence[str | None]) -> list[dict[str, str]]:
    """time_of_day, people, orientation from ``quality_scores`` rows; palette from pixels."""
    out = []
    rows = quality.select("mean_luminance", "face_count", "width", "height").iter_rows()
    for (lum, faces, width, height), palette in zip(rows, palettes, strict=True):
        tags = {
            "time_of_day": coverage.time_of_day(lum),
            "orientation": coverage.orientation(width, height),
        }
        who = coverage.people(faces)
        if who is not None:
            tags["people"] = who
        if palette is not None:
            tags["palette"] = palette
        out.append(tags)
    return out


def _merit(total: np.ndarray, ranking: pl.DataFrame, elo_start: float) -> np.ndarray:
    hero = ranking["hero"].fill_null(False).to_numpy().astype(np.float64)
    alt = ranking["alternate_rank"].to_numpy().astype(np.float64)
    elo = ranking["elo"].to_numpy().astype(np.float64)
    alt_bonus = np.where(np.isnan(alt), 0.0, ALTERNATE_BONUS / np.maximum(alt, 1.0))
    elo_bonus = np.where(np.isnan(elo), 0.0, np.clip((elo - elo_start) / ELO_SCALE, -1, 1))
    return total + HERO_BONUS * hero + alt_bonus + ELO_BONUS * elo_bonus


def _preference(ranking: pl.DataFrame, theme: Theme) -> np.ndarray:
    hero = ranking["hero"].fill_null(False).to_numpy().astype(np.float64)
    alt = ranking["alternate_rank"].is_not_null().to_numpy().astype(np.float64)
    base = 2 * hero + alt
    pref = np.repeat(base[:, None], len(theme.roles), axis=1)
    opener = ranking["opener_elo"].to_numpy().astype(np.float64)
    for r, role in enumerate(theme.roles):
        if role.name == "opener":  # the opener final's Elo orders heroes among themselves
            rel = np.where(np.isnan(opener), 0.0, np.clip((opener - 1000) / 2000, 0, 0.99))
            pref[:, r] += rel
    return pref


def theme_inputs(
    ids: list[str],
    scores: pl.DataFrame,
    ranking: pl.DataFrame | None,
    quality: pl.DataFrame,
    theme: Theme,
    config: SelectionConfig,
    zero_shot: list[dict[str, str]],
    palettes: Sequence[str | None],
) -> ThemeInputs:
    """Everything the theme adds to one day's selection (all tables aligned to ``ids``)."""
    expected = theme.theme_hash()
    hashes = set(scores["theme_hash"].to_list())
    if hashes - {expected}:
        raise ValueError(
            f"scores were made under theme hash {sorted(hashes)[0][:12]}, the theme in force "
            f"({theme.name} {theme.version}) is {expected[:12]}: re-materialize scores"
        )
    rank = _ranking_aligned(ranking, ids)
    total = scores["total_prelim"].to_numpy().astype(np.float64)
    matrix = scores.select(SCORES).to_numpy().astype(np.float64)
    probs = role_probabilities(matrix, theme.roles, config.role_temperature)
    tags = [{**z, **m} for z, m in zip(zero_shot, measured_tags(quality, palettes), strict=True)]
    axes = coverage.axis_values(theme)
    tag_ids, weights = axis_terms(tags, axes, {a: theme.emphasis(a) for a in axes})
    quotas = np.array([r.quota for r in theme.roles], dtype=np.float64)
    terms = ThemeTerms(probs, quotas, tag_ids, weights, config.role_weight, config.axis_weight)
    failed = scores.select("frame_id", "passed", "reasons").filter(~pl.col("passed"))
    ineligible = {
        fid: f"failed theme constraints ({', '.join(codes) or 'unspecified'})"
        for fid, _, codes in failed.iter_rows()
    }
    merit = _merit(total, rank, theme.judge.elo_start)
    return ThemeInputs(merit, total, terms, tags, _preference(rank, theme), ineligible, rank)


def _ranking_aligned(ranking: pl.DataFrame | None, ids: list[str]) -> pl.DataFrame:
    """The ranking's columns per frame; frames it did not rank (or no ranking) get nulls."""
    order = pl.DataFrame({"frame_id": pl.Series(ids, dtype=pl.String)})
    schema = {
        "hero": pl.Boolean,
        "alternate_rank": pl.Int64,
        "elo": pl.Float64,
        "opener_finalist": pl.Boolean,
        "opener_elo": pl.Float64,
        "rationale": pl.String,
    }
    if ranking is None:
        return order.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in schema.items())
    if ranking["frame_id"].n_unique() != len(ranking):
        raise ValueError("frame ids are not unique in the ranking table")
    table = ranking.select("frame_id", *RANKING_COLUMNS).cast(schema)  # type: ignore[arg-type]
    return order.join(table, on="frame_id", how="left", maintain_order="left")


def theme_columns(result: SelectionResult, theme: Theme | None, extra: ThemeInputs | None):
    """The THEME_COLUMNS series (nulls and empty lists without a theme)."""
    n = len(result.decisions)
    if theme is None or extra is None:
        empty = {"role_probs", "diversity_tags", "low_coverage"}
        return [
            pl.Series(name, [[] if name in empty else None] * n, dtype=dtype)
            for name, dtype in THEME_COLUMNS.items()
        ]
    kept = [i for i, d in enumerate(result.decisions) if d.keep]
    probs = extra.terms.role_probs
    roles = assign_roles(kept, probs, theme.roles, extra.preference)
    names = [r.name for r in theme.roles]
    role_p = [
        None if i not in roles or roles[i] == EXTRA else float(probs[i, names.index(roles[i])])
        for i in range(n)
    ]
    prompts = coverage.low_coverage_prompts(extra.tags, kept, coverage.axis_values(theme))
    return [
        pl.Series("role", [roles.get(i) for i in range(n)], dtype=pl.String),
        pl.Series("role_probability", role_p, dtype=pl.Float64),
        pl.Series(
            "role_probs",
            [
                [{"role": r, "p": float(p)} for r, p in zip(names, row, strict=True)]
                for row in probs
            ],
            dtype=THEME_COLUMNS["role_probs"],
        ),
        pl.Series("diversity_tags", [coverage.diversity_tags(t) for t in extra.tags]),
        pl.Series("total_prelim", extra.total_prelim, dtype=pl.Float64),
        pl.Series("hero", extra.ranking["hero"].fill_null(False), dtype=pl.Boolean),
        pl.Series("elo", extra.ranking["elo"], dtype=pl.Float64),
        pl.Series(
            "low_coverage", [list(prompts.values())] * n, dtype=THEME_COLUMNS["low_coverage"]
        ),
    ]


def theme_facts(table: pl.DataFrame, theme: Theme | None) -> dict:
    """roles, axis_coverage and low_coverage facts from the table's theme columns."""
    if theme is None:
        return {}
    kept = table.filter(pl.col("keep"))
    assigned = dict(enumerate(kept["role"].to_list()))
    tags = [dict(t.split(":", 1) for t in row) for row in table["diversity_tags"].to_list()]
    picked = [i for i, k in enumerate(table["keep"].to_list()) if k]
    axes = coverage.axis_values(theme)
    return {
        "roles": role_counts(assigned, theme.roles),
        "axis_coverage": coverage.coverage_counts(tags, picked, axes),
        "low_coverage": coverage.low_coverage_prompts(tags, picked, axes),
    }
