"""The review data of one day: every frame joined with its scores, duplicates, cluster,
decision and caption, read from the day's tables in storage.

Tables are loaded with polars and joined once per version of the day: a day is cached
under the size and mtime/ETag of each of its tables, so a page view costs one metadata
call per table until an asset is re-materialized. A missing table is reported as not
materialized (its columns are empty), never as an error; only a day without a ``frames``
table is unknown.
"""

from __future__ import annotations

import io
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

TABLES = ("frames", "quality_scores", "dedup_set", "clusters", "curated_frames", "captions")
# Columns taken from each table besides frame_id (absent ones are skipped: older tables).
COLUMNS = {
    "frames": ("media_id", "source_name", "kind", "mode", "timestamp_s", "path", "width",
               "height"),
    "quality_scores": ("passed", "reasons", "face_count", "largest_face_fraction", "score",
                       "sharpness", "mean_luminance", "noise_sigma", "colorfulness",
                       "ssim_prev", "brisque", "clip_iqa"),
    "dedup_set": ("group_id", "group_size", "is_duplicate", "duplicate_of",
                  "duplicate_partition", "distance"),
    "clusters": ("cluster", "is_outlier", "membership", "outlier_score", "is_medoid",
                 "neighbor_ids", "neighbor_sims"),
    "curated_frames": ("keep", "code", "reason", "quality", "pick", "gain", "labels"),
    "captions": ("caption",),
}  # fmt: skip
# The scores drawn as bars on a frame's why-card, scaled min..max over the day.
SCORES = ("score", "sharpness", "mean_luminance", "noise_sigma", "colorfulness", "ssim_prev",
          "brisque", "clip_iqa", "largest_face_fraction", "outlier_score")  # fmt: skip
NOT_MATERIALIZED = "not materialized"

Signature = tuple[tuple[str, str | None], ...]


class UnknownDay(LookupError):
    """No ``frames`` table for the date: nothing was ingested that day."""


@dataclass(frozen=True)
class DayReview:
    """One day's review data: per-frame records (JSON-ready) and a summary."""

    date: str
    signature: Signature
    tables: dict[str, str]  # table -> "ok" | "not materialized"
    frames: list[dict[str, Any]]
    summary: dict[str, Any]
    paths: dict[str, str] = field(repr=False)  # frame_id -> its JPEG's storage key

    def as_json(self) -> dict[str, Any]:
        frames = [{k: v for k, v in f.items() if k != "bar_rows"} for f in self.frames]
        return {"date": self.date, "tables": self.tables, "summary": self.summary,
                "frames": frames}  # fmt: skip


def table_version(store: Store, key: str) -> str | None:
    """Size and mtime (local) or ETag (S3) of ``key``; None when it does not exist."""
    path = store.path(key)
    fs = path.fs
    try:
        if hasattr(fs, "invalidate_cache"):
            fs.invalidate_cache(path.path)  # S3 listings are cached: ask for fresh metadata
        info = fs.info(path.path)
    except FileNotFoundError:
        return None
    stamp = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
    return f"{info.get('size')}:{stamp}"


def day_signature(store: Store, date: str) -> Signature:
    """The version of each of the day's tables (None: not materialized)."""
    return tuple((name, table_version(store, layout.table_key(name, date))) for name in TABLES)


class ReviewData:
    """Loads and caches ``DayReview``s (the ``max_days`` most recently viewed days)."""

    def __init__(self, store: Store, max_days: int = 8) -> None:
        self.store = store
        self.max_days = max_days
        self._cache: OrderedDict[str, DayReview] = OrderedDict()
        self._lock = threading.Lock()

    def day(self, date: str) -> DayReview:
        """The review data of ``date`` (``UnknownDay`` without a frames table)."""
        layout.check_partition(date)
        signature = day_signature(self.store, date)
        with self._lock:
            cached = self._cache.get(date)
            if cached is not None and cached.signature == signature:
                self._cache.move_to_end(date)
                return cached
        review = load_day(self.store, date, signature)
        with self._lock:
            self._cache[date] = review
            self._cache.move_to_end(date)
            while len(self._cache) > self.max_days:
                self._cache.popitem(last=False)
        return review

    def days(self) -> list[str]:
        """Dates with a frames table, newest first."""
        found = {layout.partition_of(key, layout.FRAMES) for key in self.store.list("frames")}
        return sorted((d for d in found if d and self.store.exists(layout.table_key("frames", d))),
                      reverse=True)  # fmt: skip


def load_day(store: Store, date: str, signature: Signature) -> DayReview:
    """Read and join the day's tables (those present in ``signature``)."""
    present = {name for name, version in signature if version is not None}
    if "frames" not in present:
        raise UnknownDay(f"no frames table for {date}: nothing was ingested that day")
    joined = None
    for name in TABLES:
        if name not in present:
            continue
        table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key(name, date))))
        keep = ["frame_id", *(c for c in COLUMNS[name] if c in table.columns)]
        table = table.select(keep).unique("frame_id", keep="first", maintain_order=True)
        joined = table if joined is None else joined.join(
            table, on="frame_id", how="left", maintain_order="left"
        )  # fmt: skip
    assert joined is not None  # frames is present
    rows = joined.to_dicts()
    tables = {name: ("ok" if name in present else NOT_MATERIALIZED) for name in TABLES}
    frames = [_frame_record(row) for row in rows]
    _add_relations(frames)
    _add_bars(frames)
    paths = {row["frame_id"]: row["path"] for row in rows}
    return DayReview(date, signature, tables, frames, _summary(frames), paths)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _frame_record(row: dict[str, Any]) -> dict[str, Any]:
    record = {key: _clean(value) for key, value in row.items()}
    keep = record.get("keep")
    record["status"] = "undecided" if keep is None else ("kept" if keep else "dropped")
    record["code"] = record.get("code") or ("undecided" if keep is None else "")
    record["scores"] = {name: record.get(name) for name in SCORES if record.get(name) is not None}
    neighbours = record.pop("neighbor_ids", None) or []
    sims = record.pop("neighbor_sims", None) or []
    record["neighbours"] = [{"frame_id": n, "similarity": s}
                            for n, s in zip(neighbours, sims, strict=False) if n]  # fmt: skip
    return record


def _add_relations(frames: list[dict[str, Any]]) -> None:
    """Cluster medoids and near-duplicate group members, by frame id."""
    medoids = {f["cluster"]: f["frame_id"] for f in frames
               if f.get("is_medoid") and f.get("cluster") is not None}  # fmt: skip
    groups: dict[str, list[str]] = {}
    for f in frames:
        if f.get("group_id"):
            groups.setdefault(f["group_id"], []).append(f["frame_id"])
    for f in frames:
        f["medoid"] = medoids.get(f.get("cluster"))
        members = groups.get(f.get("group_id") or "", [])
        f["near_duplicates"] = [m for m in members if m != f["frame_id"]]


def _add_bars(frames: list[dict[str, Any]]) -> None:
    """Each score's position in the day's range (0..1) for the why-card's bars."""
    for name in SCORES:
        values = [f["scores"][name] for f in frames if name in f["scores"]]
        if not values:
            continue
        low, high = min(values), max(values)
        for f in frames:
            if name in f["scores"]:
                span = high - low
                f.setdefault("bars", {})[name] = (
                    0.5 if span == 0 else round((f["scores"][name] - low) / span, 4)
                )
    for f in frames:  # preformatted for the page: the template only copies strings
        bars = f.get("bars", {})
        f["bar_rows"] = [(n, f"{bars[n] * 100:.1f}", f"{v:.3g}") for n, v in f["scores"].items()]


def _summary(frames: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts by status and reason code, and which clusters have a kept frame."""
    by_code: dict[str, int] = {}
    clusters: dict[int, dict[str, int]] = {}
    for f in frames:
        if f["status"] != "kept":
            by_code[f["code"]] = by_code.get(f["code"], 0) + 1
        cluster = f.get("cluster")
        if cluster is not None and cluster >= 0:
            entry = clusters.setdefault(cluster, {"frames": 0, "kept": 0})
            entry["frames"] += 1
            entry["kept"] += f["status"] == "kept"
    kept = sum(f["status"] == "kept" for f in frames)
    return {
        "frames": len(frames),
        "kept": kept,
        "dropped": sum(f["status"] == "dropped" for f in frames),
        "undecided": sum(f["status"] == "undecided" for f in frames),
        "dropped_by_code": dict(sorted(by_code.items(), key=lambda kv: (-kv[1], kv[0]))),
        "clusters": len(clusters),
        "clusters_covered": sum(1 for c in clusters.values() if c["kept"]),
        "outliers": sum(1 for f in frames if f.get("is_outlier")),
        "per_cluster": {str(k): v for k, v in sorted(clusters.items())},
    }
