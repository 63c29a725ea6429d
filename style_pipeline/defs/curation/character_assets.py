"""Curation group: ``faces`` (every face of every frame, with its descriptor) and what is
built on it.

Wiring and reporting only: the stages are imported inside each asset, so loading the code
location imports neither dlib nor OpenCV.
"""

import time

import dagster as dg
import polars as pl

from style_pipeline.defs.curation.assets import CURATION
from style_pipeline.defs.metadata import sample_table, table_metadata
from style_pipeline.defs.resources import SettingsResource, StorageResource

FACE_COLUMNS = ["frame_id", "face_index", "x0", "y0", "x1", "y1", "detector_score", "blur"]


@dg.asset(**CURATION, kinds={"dlib", "opencv", "parquet"})
def faces(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    frames: pl.DataFrame,
) -> dg.Output[pl.DataFrame]:
    """Every face per frame: box, landmarks, detector score, blur, 128-d descriptor (cached)."""
    from style_pipeline.stages.faces import empty_faces_table, find_partition_faces

    started = time.perf_counter()
    everything = settings.load()
    cfg = everything.characters
    if not cfg.enabled:
        table = empty_faces_table()
        context.log.info("characters.enabled is false: no faces are looked for")
        return dg.Output(
            table,
            metadata={
                **table_metadata(table),
                "reason": "characters.enabled is false",
                "frames": frames.height,
            },
        )
    table, facts = find_partition_faces(
        frames,
        storage.store(),
        cfg,
        everything.curation.quality.faces,
        workers=cfg.workers,
        log=context.log.info,
    )
    if facts.fallback_reason:
        context.log.warning(f"FACES FELL BACK TO OPENCV: {facts.fallback_reason}")
    for key in facts.unreadable:
        context.log.warning(f"unreadable face cache entry {key}: recomputed and rewritten")
    return dg.Output(
        table,
        metadata={
            **table_metadata(table),
            **facts.models,
            "fallback_reason": facts.fallback_reason,
            "frames": facts.frames,
            "frames_with_faces": facts.frames_with_faces,
            "faces": facts.faces,
            "embedded": facts.embedded,
            "computed": facts.computed,
            "cached": facts.cached,
            "cache_rewritten": len(facts.unreadable),
            "workers": facts.workers,
            "scan_seconds": round(facts.scan_seconds, 3),
            "frames_per_s": round(facts.frames_per_s, 2),
            "faces_per_s": round(facts.faces_per_s, 2),
            "seconds": round(time.perf_counter() - started, 3),
            "sample": sample_table(table, FACE_COLUMNS),
        },
    )
