"""The ``dedup_set`` stage: pHash/dHash near-duplicate groups of one day.

Hashes the day's frame JPEGs (``config.workers`` processes, a progress line every 10 s),
groups them within the day and against the kept frames of earlier days
(``curation/dedup.py``, which also writes the day's index entries), and makes each
group's best-quality frame its representative.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from style_pipeline.contracts.curation import DedupConfig
from style_pipeline.curation.dedup import dedup_partition, hash_frames
from style_pipeline.parallel import progress_log
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import true_share

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DedupFacts:
    """What the ``dedup_set`` asset reports besides the table."""

    frames: int
    groups: int
    duplicates: int
    duplicates_of_earlier_days: int
    duplicate_rate: float


def dedup_day(
    frames: pl.DataFrame,
    quality: pl.DataFrame,
    store: Store,
    partition: str,
    config: DedupConfig,
    log: Callable[[str], None] | None = None,
) -> tuple[pl.DataFrame, DedupFacts]:
    """``dedup_set`` rows: hashes, groups and duplicates within the day and vs earlier days.

    The representative of a group is its best-quality frame (``quality_scores.score``).
    ``log`` (default: this module's logger) gets a hashing progress line at most every
    10 s and one at the end.
    """
    rows = frames.select("frame_id", "path").to_dicts()
    progress = progress_log(log or _log.info, "dedup_set hashing", "frames")
    with store.local_copies([r["path"] for r in rows]) as local:
        paths = [(r["frame_id"], local[r["path"]]) for r in rows]
        hashed = hash_frames(paths, config.workers, progress)
    score = dict(zip(quality["frame_id"], quality["score"], strict=True)) if len(quality) else {}
    table = dedup_partition(store, partition, hashed, config, score)
    dups = table.filter(pl.col("is_duplicate"))
    facts = DedupFacts(
        frames=len(table),
        groups=table["group_id"].n_unique() if len(table) else 0,
        duplicates=len(dups),
        duplicates_of_earlier_days=len(dups.filter(pl.col("duplicate_partition") != partition)),
        duplicate_rate=duplicate_rate(table),
    )
    return table, facts


def duplicate_rate(dedup: pl.DataFrame) -> float:
    """Share of the day's frames that duplicate another (0 for an empty day)."""
    return true_share(dedup, "is_duplicate")
