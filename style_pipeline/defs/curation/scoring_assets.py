"""Curation group: ``scores``, every frame's scorecard against the day's theme.

Wiring and reporting only: the stage (``stages/scores.py``) is imported inside the asset,
so loading the code location imports no model library.
"""

import time

import dagster as dg
import polars as pl

from style_pipeline.defs.curation.assets import CURATION
from style_pipeline.defs.metadata import sample_table, table_metadata
from style_pipeline.defs.resources import SettingsResource, StorageResource

TOP_COLUMNS = ["frame_id", "total_prelim", "q_tech", "aesthetic", "vibe", "typography"]


@dg.asset(**CURATION, kinds={"pytorch", "opencv", "parquet"})
def scores(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
    quality_scores: pl.DataFrame,
    embeddings: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """q_tech, aesthetic, vibe, typography, composition and total_prelim per frame; gate."""
    from style_pipeline.curation.themes import load_theme
    from style_pipeline.stages.scores import SCORECARD_VERSION, score_day

    started = time.perf_counter()
    cfg = settings.load().curation
    theme = load_theme(cfg.theme, cfg.themes_dir)
    table, facts = score_day(
        frames, quality_scores, embeddings, storage.store(), context.partition_key, cfg, theme
    )
    context.log.info(f"aesthetic from {facts.aesthetic_source}, text by {facts.text_detector}")
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            "theme": facts.theme,
            "theme_hash": facts.theme_hash,
            "scorecard_version": SCORECARD_VERSION,
            "aesthetic_source": facts.aesthetic_source,
            "text_detector": facts.text_detector,
            "passed": facts.passed,
            "below_floor": facts.reasons,
            **{f"mean_{name}": value for name, value in facts.means.items()},
            "top_10": sample_table(
                table.sort("total_prelim", descending=True), TOP_COLUMNS, rows=10
            ),
            "seconds": round(time.perf_counter() - started, 3),
        },
    )
