"""Curation group: ``ranking``, the best frame of each moment chosen pair by pair with Elo.

Wiring and reporting only: the stage (``stages/ranking.py``) is imported inside the asset,
so loading the code location imports no model library or HTTP client. The stage writes
the day's judgments and spend to ``ranking/<date>/judgments.json``; the metadata shows
the spend against the budgets and each cluster's hero with its Elo and rationale.
"""

import time

import dagster as dg
import polars as pl

from style_pipeline.defs.curation.assets import CURATION
from style_pipeline.defs.metadata import sample_table, table_metadata
from style_pipeline.defs.resources import SettingsResource, StorageResource

HERO_COLUMNS = ["cluster", "frame_id", "elo", "wins", "losses", "judge", "rationale"]


@dg.asset(**CURATION, kinds={"python", "parquet"})
def ranking(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
    scores: pl.DataFrame,
    clusters: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Hero and alternates per cluster, opener finalists, Elo and rationales; judge spend."""
    from style_pipeline.curation.themes import load_theme
    from style_pipeline.stages.ranking import RankingTables, rank_day
    from style_pipeline.storage import layout

    started = time.perf_counter()
    cfg = settings.load().curation
    theme = load_theme(cfg.theme, cfg.themes_dir)
    table, _, facts = rank_day(
        RankingTables(frames, scores, clusters), storage.store(), theme, context.partition_key
    )
    spend = facts.spend
    for reason, pairs in facts.fallback_reasons.items():
        context.log.warning(f"judge fell back to the heuristic on {pairs} pair(s): {reason}")
    context.log.info(
        f"{spend.judge}: {spend.pairs}/{spend.pair_budget} pairs, {spend.cache_hits} cached, "
        f"{spend.input_tokens + spend.output_tokens}/{spend.token_budget} tokens, "
        f"${spend.cost_usd:.4f}"
    )
    heroes = table.filter(pl.col("hero"))
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "theme": theme.name,
            "theme_hash": theme.theme_hash(),
            "judge": spend.judge,
            "pairs": f"{spend.pairs} / {spend.pair_budget}",
            "tokens": f"{spend.input_tokens + spend.output_tokens} / {spend.token_budget}",
            "input_tokens": spend.input_tokens,
            "output_tokens": spend.output_tokens,
            "cost_usd": spend.cost_usd,
            "cache_hits": spend.cache_hits,
            "fallbacks": spend.fallbacks,
            "fallback_reasons": facts.fallback_reasons,
            "contenders": facts.contenders,
            "clusters_judged": facts.clusters_judged,
            "heroes": len(facts.heroes),
            "opener_finalists": facts.opener_finalists,
            "not_ranked": facts.not_ranked,
            "judgments": dg.MetadataValue.path(layout.judgments_key(context.partition_key)),
            "hero_table": sample_table(heroes, HERO_COLUMNS, rows=20),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
