"""The ``quality_scores`` stage: image-quality metrics and the gate result for every frame.

Sharpness, exposure, noise, colour, SSIM redundancy, faces and the optional IQA scores
(``curation/quality.py``) on local copies of the day's frame JPEGs, in input order, measured
by ``config.workers`` processes (0: one per CPU) with a progress line every 10 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import polars as pl

from style_pipeline.contracts.curation import QualityConfig, QualityRecord
from style_pipeline.curation.faces import FaceDetector
from style_pipeline.curation.iqa import iqa_status
from style_pipeline.curation.quality import FrameInput, score_frames
from style_pipeline.parallel import progress_log
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema, true_share

QUALITY_SCHEMA = polars_schema(QualityRecord)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QualityFacts:
    """What the ``quality_scores`` asset reports besides the table."""

    frames: int
    passed: int
    pass_rate: float
    scorers: Mapping[str, str]  # which optional scorers ran: {"faces": backend, ...}


def score_partition(
    frames: pl.DataFrame,
    store: Store,
    config: QualityConfig,
    log: Callable[[str], None] | None = None,
) -> tuple[pl.DataFrame, QualityFacts]:
    """``quality_scores`` rows for every frame (input order), metrics plus gate result.

    ``log`` (default: this module's logger) gets a progress line at most every 10 s and
    one at the end."""
    table = _score(frames, store, config, log)
    facts = QualityFacts(
        frames=len(table),
        passed=int(table["passed"].sum() or 0),
        pass_rate=pass_rate(table),
        scorers=quality_availability(config),
    )
    return table, facts


def _score(
    frames: pl.DataFrame, store: Store, config: QualityConfig, log: Callable[[str], None] | None
) -> pl.DataFrame:
    if frames.is_empty():
        return pl.DataFrame(schema=QUALITY_SCHEMA)
    rows = frames.select("frame_id", "media_id", "timestamp_s", "path").to_dicts()
    with store.local_copies([r["path"] for r in rows]) as local:
        inputs = [
            FrameInput(r["frame_id"], local[r["path"]], r["media_id"], r["timestamp_s"])
            for r in rows
        ]
        progress = progress_log(log or _log.info, "quality_scores", "frames")
        records = score_frames(inputs, config, workers=config.workers, progress=progress)
    return pl.DataFrame([r.model_dump() for r in records], schema=QUALITY_SCHEMA)


def quality_availability(config: QualityConfig) -> dict[str, str]:
    """Which optional scorers ran: ``{"faces": backend, "brisque": ..., "clip_iqa": ...}``."""
    return {"faces": FaceDetector(config.faces).backend, **iqa_status(config.iqa)}


def pass_rate(quality: pl.DataFrame) -> float:
    """Share of frames that passed the gate (0 for an empty day)."""
    return true_share(quality, "passed")
