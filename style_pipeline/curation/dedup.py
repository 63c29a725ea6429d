"""Near-duplicate groups inside a day and against frames kept on earlier days.

Two frames are near-duplicates when their pHash distance is at most ``phash_threshold``,
or when it is borderline (at most ``phash_threshold + borderline``) and their dHash
distance is at most ``dhash_threshold``. Groups are the connected components of that
relation (union-find). Each day's kept frames go into an incremental index, one parquet
per partition under ``index_prefix``; a day is compared with the index entries of strictly
earlier partitions only, so a re-run or a backfill of any date gives the same answer.
An index entry that cannot be read is rebuilt from that day's ``dedup_set`` table (the
index holds exactly its kept rows), logged by key and rewritten; when the table cannot
rebuild it either, the error names both keys and the fix.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import math
import os
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import polars as pl

from style_pipeline.contracts.curation import DedupConfig
from style_pipeline.curation.hashing import (
    ImageHashes,
    from_hex,
    hamming,
    hash_file,
    radius_pairs,
    to_hex,
)
from style_pipeline.parallel import ItemError, Progress, map_bounded
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

DEDUP_SCHEMA = pl.Schema(
    {
        "frame_id": pl.String(),
        "phash": pl.String(),
        "dhash": pl.String(),
        "group_id": pl.String(),
        "group_size": pl.Int64(),
        "is_duplicate": pl.Boolean(),
        "duplicate_of": pl.String(),
        "duplicate_partition": pl.String(),
        "distance": pl.Int64(),
    }
)
INDEX_SCHEMA = pl.Schema(
    {"frame_id": pl.String(), "phash": pl.String(), "dhash": pl.String(), "partition": pl.String()}
)

log = logging.getLogger(__name__)


class DedupIndexError(ValueError):
    """An index entry is unreadable and the day's ``dedup_set`` table cannot rebuild it."""


@dataclass(frozen=True)
class HashedFrame:
    """A frame id with its 64-bit pHash and dHash."""

    frame_id: str
    phash: int
    dhash: int


def is_near_duplicate(phash_distance, dhash_distance, config: DedupConfig):
    """The near-duplicate rule on scalar or array distances."""
    pd, dd = np.asarray(phash_distance), np.asarray(dhash_distance)
    border = (pd <= config.phash_threshold + config.borderline) & (dd <= config.dhash_threshold)
    return (pd <= config.phash_threshold) | border


def duplicate_pairs(
    phash: np.ndarray,
    dhash: np.ndarray,
    config: DedupConfig,
    base_phash: np.ndarray | None = None,
    base_dhash: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(i, j)`` index pairs satisfying the rule, within one set (``i < j``) or against a base.

    Every matching pair has pHash distance <= ``phash_threshold`` or dHash distance <=
    ``dhash_threshold``, so two radius searches find all candidates.
    """
    pi, pj, _ = radius_pairs(phash, base_phash, config.phash_threshold)
    di, dj, _ = radius_pairs(dhash, base_dhash, config.dhash_threshold)
    bp = phash if base_phash is None else base_phash
    bd = dhash if base_dhash is None else base_dhash
    size = max(1, bp.size)
    key = np.unique(np.concatenate([pi * size + pj, di * size + dj]))
    i, j = key // size, key % size
    pd = np.bitwise_count(phash[i] ^ bp[j])
    dd = np.bitwise_count(dhash[i] ^ bd[j])
    keep = is_near_duplicate(pd, dd, config)
    return i[keep], j[keep]


class _UnionFind:
    """Disjoint sets over int nodes (created on first use), path compression."""

    def __init__(self):
        self.parent: dict[int, int] = {}

    def find(self, x: int) -> int:
        root = x
        while self.parent.get(root, root) != root:
            root = self.parent[root]
        while self.parent.get(x, x) != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _score(quality: Mapping[str, float | None] | None, frame_id: str) -> float:
    value = None if quality is None else quality.get(frame_id)
    return -math.inf if value is None or math.isnan(value) else float(value)


def group_frames(
    frames: Sequence[HashedFrame],
    partition: str | dt.date,
    config: DedupConfig,
    quality: Mapping[str, float | None] | None = None,
    earlier: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """Dedup rows (``DEDUP_SCHEMA``, sorted by frame_id) for one partition's frames.

    ``earlier`` holds index entries (``INDEX_SCHEMA``) of earlier partitions: a frame
    matching one is a duplicate of its closest earlier match. Inside the day the group's
    representative is the frame with the best ``quality`` (missing: worst; ties: lowest
    frame_id) and the other members are its duplicates.
    """
    day = partition_key(partition)
    ids = [f.frame_id for f in frames]
    if len(set(ids)) != len(ids):
        raise ValueError("frame ids of a partition must be unique")
    earlier = earlier if earlier is not None else pl.DataFrame(schema=INDEX_SCHEMA)
    if earlier.height:
        latest = earlier["partition"].max()
        if not isinstance(latest, str):
            raise TypeError(f"index partitions must be date strings, got {latest!r}")
        if latest >= day:
            raise ValueError(f"index entries of {day} or later cannot be 'earlier' than {day}")
    n = len(frames)
    ph = np.array([f.phash for f in frames], dtype=np.uint64)
    dh = np.array([f.dhash for f in frames], dtype=np.uint64)
    e_ids, e_parts = earlier["frame_id"].to_list(), earlier["partition"].to_list()
    e_ph = np.array([from_hex(h) for h in earlier["phash"]], dtype=np.uint64)
    e_dh = np.array([from_hex(h) for h in earlier["dhash"]], dtype=np.uint64)

    uf = _UnionFind()
    for a, b in zip(*duplicate_pairs(ph, dh, config), strict=True):
        uf.union(int(a), int(b))
    nearest: dict[int, tuple[int, str, str, int]] = {}  # today idx -> best earlier match
    matched: set[int] = set()  # nodes of earlier entries that match a frame of the day
    for a, b in zip(*duplicate_pairs(ph, dh, config, e_ph, e_dh), strict=True):
        a, b = int(a), int(b)
        uf.union(a, n + b)
        matched.add(n + b)
        cand = (hamming(int(ph[a]), int(e_ph[b])), e_parts[b], e_ids[b], b)
        nearest[a] = min(nearest.get(a, cand), cand)

    members: dict[int, list[int]] = {}
    for node in [*range(n), *sorted(matched)]:
        members.setdefault(uf.find(node), []).append(node)
    rows = []
    for nodes in members.values():
        today = [x for x in nodes if x < n]
        if not today:
            continue
        olds = [x - n for x in nodes if x >= n]
        if olds:
            anchor = min(olds, key=lambda b: (e_parts[b], e_ids[b]))
            group_id = e_ids[anchor]
        else:
            rep = min(today, key=lambda x: (-_score(quality, ids[x]), ids[x]))
            group_id = ids[rep]
        for x in today:
            if olds:
                b = nearest[x][3] if x in nearest else anchor
                dup, dup_part, dist = e_ids[b], e_parts[b], hamming(int(ph[x]), int(e_ph[b]))
            elif x == rep:
                dup, dup_part, dist = None, None, None
            else:
                dup, dup_part, dist = ids[rep], day, hamming(int(ph[x]), int(ph[rep]))
            rows.append(
                (ids[x], to_hex(int(ph[x])), to_hex(int(dh[x])), group_id, len(today))
                + (dup is not None, dup, dup_part, dist)
            )
    return pl.DataFrame(rows, schema=DEDUP_SCHEMA, orient="row").sort("frame_id")


# Hashing a 1280x720 JPEG takes ~4 ms of CPU, mostly in Pillow's decoder, which releases
# the GIL: threads spread it with no start-up. A worker process costs ~0.3 s of CPU to
# start (it imports imagehash and Pillow; measured by benchmarks/bench_cpu_pools.py), so
# processes only pay for themselves on big days.
MIN_POOL_FILES = 1000


def hash_frames(
    frames: Sequence[tuple[str, str | os.PathLike]],
    workers: int = 1,
    progress: Progress | None = None,
    every_s: float = 10.0,
) -> list[HashedFrame]:
    """pHash and dHash of ``(frame_id, local path)`` pairs, in order, hashed by ``workers``
    (0: one per CPU; 1: inline): threads below ``MIN_POOL_FILES`` files, processes from
    there on. A file that cannot be decoded raises its decoder's error, noting the frame."""
    ids, paths = [f for f, _ in frames], [p for _, p in frames]
    results = map_bounded(
        hash_file,
        paths,
        workers,
        progress=progress,
        every_s=every_s,
        threads=len(paths) < MIN_POOL_FILES,
    )
    out: list[HashedFrame] = []
    with closing(results):
        for frame_id, path, result in zip(ids, paths, results, strict=True):
            if isinstance(result, ItemError):
                result.reraise(f"dedup_set: frame {frame_id} ({path})")
            out.append(_hashed(frame_id, result))
    return out


def _hashed(frame_id: str, hashes: ImageHashes) -> HashedFrame:
    return HashedFrame(frame_id, hashes.phash, hashes.dhash)


def partition_key(partition: str | dt.date) -> str:
    """A partition as ``YYYY-MM-DD``; raises on anything else."""
    if isinstance(partition, dt.date):
        return partition.isoformat()
    try:
        return dt.date.fromisoformat(partition).isoformat()
    except ValueError as exc:
        raise ValueError(f"partition must be YYYY-MM-DD, got {partition!r}") from exc


def index_key(partition: str | dt.date, config: DedupConfig) -> str:
    """The index object of one day under ``config.index_prefix``."""
    return layout.dedup_index_key(partition_key(partition), config.index_prefix)


def load_index(store: Store, partition: str | dt.date, config: DedupConfig) -> pl.DataFrame:
    """Index entries of partitions strictly before ``partition`` (within the lookback)."""
    day = dt.date.fromisoformat(partition_key(partition))
    first = dt.date.min
    if config.lookback_days is not None:
        first = day - dt.timedelta(days=config.lookback_days)
    frames = []
    for key in store.list(config.index_prefix.rstrip("/")):
        name = key.rsplit("/", 1)[-1]
        if name.startswith("."):  # an atomic write in progress
            continue
        if not name.endswith(".parquet"):
            raise ValueError(f"unexpected file in the dedup index: {key}")
        other = dt.date.fromisoformat(partition_key(name.removesuffix(".parquet")))
        if first <= other < day:
            frames.append(_read_index_day(store, key, other.isoformat(), config))
    if not frames:
        return pl.DataFrame(schema=INDEX_SCHEMA)
    return pl.concat(frames).cast(INDEX_SCHEMA).sort("partition", "frame_id")  # type: ignore[arg-type]


def _index_problem(data: bytes, day: str) -> tuple[pl.DataFrame | None, str]:
    """The entries in ``data`` of index day ``day``, or None and why they are unusable."""
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except pl.exceptions.PolarsError as exc:  # torn or foreign bytes
        return None, f"{type(exc).__name__}: {str(exc)[:200]}"
    if set(frame.columns) != set(INDEX_SCHEMA):
        return None, f"columns {sorted(frame.columns)}, expected {sorted(INDEX_SCHEMA)}"
    if frame.height and set(frame["partition"].to_list()) != {day}:
        return None, f"holds entries of other days than {day}"
    return frame.select(INDEX_SCHEMA.names()).cast(INDEX_SCHEMA), ""


def _read_index_day(store: Store, key: str, day: str, config: DedupConfig) -> pl.DataFrame:
    """One day's index entries; an unreadable entry is rebuilt from the day's table."""
    # Store errors (an S3 outage) propagate: only the entry's own bytes make a rebuild.
    entries, problem = _index_problem(store.read_bytes(key), day)
    if entries is not None:
        return entries
    table_key = layout.table_key(layout.DEDUP_SET, day)
    try:
        table = pl.read_parquet(io.BytesIO(store.read_bytes(table_key)))
        kept = table.filter(~pl.col("is_duplicate"))
    except (FileNotFoundError, pl.exceptions.PolarsError) as exc:
        raise DedupIndexError(
            f"dedup index entry {key} is unreadable ({problem}) and {table_key} cannot rebuild "
            f"it ({type(exc).__name__}: {str(exc)[:200]}); re-materialize dedup_set for {day}"
        ) from exc
    log.warning("dedup index entry %s is unreadable (%s): rebuilt from %s", key, problem, table_key)
    write_index(store, day, table, config)
    entries = kept.select("frame_id", "phash", "dhash").with_columns(partition=pl.lit(day))
    return entries.cast(INDEX_SCHEMA)


def write_index(
    store: Store, partition: str | dt.date, rows: pl.DataFrame, config: DedupConfig
) -> str:
    """Replace ``partition``'s index entries with its kept (non-duplicate) frames."""
    kept = rows.filter(~pl.col("is_duplicate")).select("frame_id", "phash", "dhash")
    entries = kept.with_columns(partition=pl.lit(partition_key(partition))).cast(INDEX_SCHEMA)
    buffer = io.BytesIO()
    entries.sort("frame_id").write_parquet(buffer)
    return store.put_bytes(buffer.getvalue(), index_key(partition, config))


def dedup_partition(
    store: Store,
    partition: str | dt.date,
    frames: Sequence[HashedFrame],
    config: DedupConfig,
    quality: Mapping[str, float | None] | None = None,
) -> pl.DataFrame:
    """Group one partition against the earlier index, then write its own index entries."""
    rows = group_frames(frames, partition, config, quality, load_index(store, partition, config))
    write_index(store, partition, rows, config)
    return rows
