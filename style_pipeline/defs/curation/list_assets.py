"""Curation group: ``curated_list``, the day's selection as a portable, reasoned JSON list.

Wiring and reporting only: the stage (``stages/curated_list.py``) is imported inside the
asset. The document goes through the JSON IO manager to ``curated_list/<date>.json``; the
stage copies the chosen JPEGs in rank order to ``curated_list/<date>/export/``. Metadata:
the coverage per axis (markdown), role counts, the judge's spend and the top 10.
"""

import time

import dagster as dg
import polars as pl

from style_pipeline.defs.curation.assets import CURATION, coverage_markdown
from style_pipeline.defs.resources import SettingsResource, StorageResource


def top_markdown(items: list, rows: int = 10) -> str:
    lines = ["| rank | frame | role | total_prelim | q_tech | vibe | Elo | tags |"]
    lines.append("|---|---|---|---|---|---|---|---|")
    for item in items[:rows]:
        s = item.scores
        cells = [f"{s[k]:.3f}" if k in s else "" for k in ("total_prelim", "q_tech", "vibe")]
        elo = f"{item.elo:.0f}" if item.elo is not None else ""
        row = [str(item.rank), item.frame_id, item.role, *cells, elo, " ".join(item.diversity_tags)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


@dg.asset(**CURATION, kinds={"json"}, io_manager_key="json_io_manager")
def curated_list(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    curated_frames: pl.DataFrame,
    scores: pl.DataFrame,
    ranking: pl.DataFrame,
):
    """curated_list/<date>.json: kept frames in role order with scores, tags, reasons, Elo."""
    from style_pipeline.curation.themes import load_theme
    from style_pipeline.stages.curated_list import build_curated_list

    started = time.perf_counter()
    cfg = settings.load().curation
    theme = load_theme(cfg.theme, cfg.themes_dir)
    document, facts = build_curated_list(
        curated_frames, scores, ranking, storage.store(), context.partition_key, theme, cfg
    )
    for axis, prompt in document.low_coverage.items():
        context.log.info(f"low coverage on {axis}: {prompt}")
    if not facts.judgments_found:
        context.log.warning("no judgments document for the day: judge spend reported as zero")
    spend = facts.judge
    return dg.Output(
        document,
        metadata={
            "items": facts.items,
            "theme": f"{theme.name} {theme.version}",
            "theme_hash": document.theme.hash,
            "roles": facts.roles,
            "coverage": dg.MetadataValue.md(
                coverage_markdown(document.coverage, document.low_coverage)
            ),
            "low_coverage": len(document.low_coverage),
            "judge": spend.judge,
            "judge_pairs": f"{spend.pairs} / {spend.pair_budget}",
            "judge_tokens": f"{spend.input_tokens + spend.output_tokens} / {spend.token_budget}",
            "judge_cost_usd": spend.cost_usd,
            "exported": facts.exported,
            "removed_exports": facts.removed_exports,
            "top_10": dg.MetadataValue.md(top_markdown(document.items)),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
