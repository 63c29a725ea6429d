"""The review data of one day: every frame joined with its scores, duplicates, cluster,
decision and caption, read from the day's tables in storage; on days curated against a
theme also its theme scores, contest (hero, Elo, the judge's rationale), role and
``axis:value`` tags, and for the day the coverage per axis, role counts, the theme and the
judge's spend (from ``curated_list/<date>.json``, else ``ranking/<date>/judgments.json``).
With the day's ``characters`` table (one row per face), each frame carries its faces (box,
label: a character's name, ``unknown_<n>`` or none) and the day the counts per character.

Tables are loaded with polars and joined once per version of the day: a day is cached
under the size and mtime/ETag of each of its tables, so a page view costs one metadata
call per table until an asset is re-materialized. A missing table is reported as not
materialized (its columns are empty), never as an error; only a day without a ``frames``
table is unknown. The two documents are versioned the same way.
"""

from __future__ import annotations

import io
import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pydantic import ValidationError

from style_pipeline.contracts.characters import UNKNOWN_PREFIX
from style_pipeline.contracts.curation import CuratedListDocument, JudgeSpend
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

TABLES = ("frames", "quality_scores", "dedup_set", "clusters", "scores", "ranking",
          "curated_frames", "captions")  # fmt: skip
# JSON documents of the day (name -> key): the curated list, and the judgments for the spend.
DOCUMENTS = {"curated_list": lambda d: layout.document_key(layout.CURATED_LIST, d),
             "judgments": layout.judgments_key}  # fmt: skip
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
    "scores": ("q_tech", "aesthetic", "aesthetic_source", "vibe", "typography", "composition",
               "total_prelim", "passed", "reasons"),
    "ranking": ("contender", "elo", "wins", "losses", "hero", "alternate_rank",
                "opener_finalist", "opener_elo", "rationale", "judge", "reason"),
    "curated_frames": ("keep", "code", "reason", "quality", "pick", "gain", "labels", "role",
                       "role_probability", "role_probs", "diversity_tags", "total_prelim",
                       "hero", "elo"),
    "captions": ("caption",),
}  # fmt: skip
# Names a table's column takes in the joined day (where another table has the same name).
RENAMES = {
    "scores": {"passed": "theme_passed", "reasons": "theme_reasons"},
    "ranking": {"reason": "contest_reason"},
    "curated_frames": {"total_prelim": "cf_total_prelim", "hero": "cf_hero", "elo": "cf_elo"},
}
# Per-frame fields of the theme tables: None in every record when not materialized.
THEME_FIELDS = ("aesthetic_source", "theme_passed", "theme_reasons", "contender", "elo", "wins",
                "losses", "hero", "alternate_rank", "opener_finalist", "opener_elo",
                "rationale", "judge", "contest_reason", "role", "role_probability",
                "role_probs", "diversity_tags")  # fmt: skip
# Theme scores in [0, 1], drawn on their own scale (not the day's range).
THEME_SCORES = ("q_tech", "aesthetic", "vibe", "typography", "composition", "total_prelim")
# The scores drawn as bars on a frame's why-card, scaled min..max over the day.
SCORES = ("score", "sharpness", "mean_luminance", "noise_sigma", "colorfulness", "ssim_prev",
          "brisque", "clip_iqa", "largest_face_fraction", "outlier_score")  # fmt: skip
# One row per face, several per frame: read on its own, not joined.
FACES_TABLE = "characters"
FACE_COLUMNS = ("frame_id", "face_index", "label", "matched", "confidence", "x0", "y0", "x1",
                "y1")  # fmt: skip
NOT_MATERIALIZED = "not materialized"
# Preformatted for the page only, left out of the day's JSON.
PAGE_ONLY = frozenset({"bar_rows", "theme_bar_rows", "tags_attr", "role_probs_text",
                       "face_boxes", "characters_attr"})  # fmt: skip

Signature = tuple[tuple[str, str | None], ...]


class UnknownDay(LookupError):
    """No ``frames`` table for the date: nothing was ingested that day."""


@dataclass(frozen=True)
class DayReview:
    """One day's review data: per-frame records (JSON-ready) and a summary."""

    date: str
    signature: Signature
    tables: dict[str, str]  # table or document -> "ok" | "not materialized" | "invalid: ..."
    frames: list[dict[str, Any]]
    summary: dict[str, Any]
    paths: dict[str, str] = field(repr=False)  # frame_id -> its JPEG's storage key

    def as_json(self) -> dict[str, Any]:
        frames = [{k: v for k, v in f.items() if k not in PAGE_ONLY} for f in self.frames]
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
    """The version of each of the day's tables and documents (None: not materialized)."""
    names = (*TABLES, FACES_TABLE)
    tables = [(name, table_version(store, layout.table_key(name, date))) for name in names]
    docs = [(name, table_version(store, key(date))) for name, key in DOCUMENTS.items()]
    return tuple(tables + docs)


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
    """Read and join the day's tables (those present in ``signature``) and documents."""
    present = {name for name, version in signature if version is not None}
    if "frames" not in present:
        raise UnknownDay(f"no frames table for {date}: nothing was ingested that day")
    joined = None
    day_level: dict[str, Any] = {}  # columns with one value for the whole day
    for name in TABLES:
        if name not in present:
            continue
        table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key(name, date))))
        day_level.update(_day_level(name, table))
        keep = ["frame_id", *(c for c in COLUMNS[name] if c in table.columns)]
        table = table.select(keep).unique("frame_id", keep="first", maintain_order=True)
        table = table.rename({k: v for k, v in RENAMES.get(name, {}).items() if k in keep})
        joined = table if joined is None else joined.join(
            table, on="frame_id", how="left", maintain_order="left"
        )  # fmt: skip
    assert joined is not None  # frames is present
    joined = _coalesce_curated(joined)
    rows = joined.to_dicts()
    tables = {name: ("ok" if name in present else NOT_MATERIALIZED) for name in TABLES}
    faces = _read_faces(store, date, present, tables)
    curated_list, spend = _documents(store, date, present, tables)
    frames = [_frame_record(row) for row in rows]
    _add_relations(frames)
    _add_bars(frames)
    _add_list_ranks(frames, curated_list)
    _add_faces(frames, faces)
    summary = _summary(frames)
    summary.update(_theme_summary(frames, curated_list, spend, day_level))
    summary.update(_character_summary(frames, faces is not None))
    paths = {row["frame_id"]: row["path"] for row in rows}
    return DayReview(date, signature, tables, frames, summary, paths)


def _day_level(name: str, table: pl.DataFrame) -> dict[str, Any]:
    """The theme (scores) and the low-coverage prompts (curated_frames): one per day."""
    out: dict[str, Any] = {}
    if table.height == 0:
        return out
    if name == "scores" and {"theme", "theme_hash"} <= set(table.columns):
        out["theme"] = {"name": table["theme"][0], "version": None, "hash": table["theme_hash"][0]}
    if name == "curated_frames" and "low_coverage" in table.columns:
        prompts = table["low_coverage"][0]
        out["low_coverage"] = list(prompts) if prompts is not None else []
    return out


def _coalesce_curated(joined: pl.DataFrame) -> pl.DataFrame:
    """total_prelim, hero and elo from scores / ranking, else from curated_frames' copy."""
    for column in ("total_prelim", "hero", "elo"):
        copy = f"cf_{column}"
        if copy not in joined.columns:
            continue
        if column in joined.columns:
            joined = joined.with_columns(pl.coalesce(column, copy).alias(column)).drop(copy)
        else:
            joined = joined.rename({copy: column})
    return joined


def _documents(
    store: Store, date: str, present: set[str], tables: dict[str, str]
) -> tuple[CuratedListDocument | None, dict[str, Any] | None]:
    """The curated list and the judge's spend (the list's audit, else the judgments)."""
    curated_list = None
    spend = None
    for name in DOCUMENTS:
        tables[name] = "ok" if name in present else NOT_MATERIALIZED
    if "curated_list" in present:
        try:
            curated_list = CuratedListDocument.model_validate_json(
                store.read_bytes(DOCUMENTS["curated_list"](date))
            )
            spend = {**curated_list.audit.judge.model_dump(), "source": "curated_list"}
        except (ValidationError, FileNotFoundError) as err:
            tables["curated_list"] = f"invalid: {str(err).splitlines()[0]}"
    if spend is None and "judgments" in present:
        try:
            raw = json.loads(store.read_bytes(DOCUMENTS["judgments"](date)))
            spend = {**JudgeSpend.model_validate(raw["spend"]).model_dump(), "source": "judgments"}
        except (ValidationError, FileNotFoundError, KeyError, TypeError, ValueError) as err:
            tables["judgments"] = f"invalid: {str(err).splitlines()[0]}"
    return curated_list, spend


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf become None (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _frame_record(row: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = dict.fromkeys(THEME_FIELDS)
    record.update((key, _clean(value)) for key, value in row.items())
    keep = record.get("keep")
    record["status"] = "undecided" if keep is None else ("kept" if keep else "dropped")
    record["code"] = record.get("code") or ("undecided" if keep is None else "")
    record["scores"] = {name: record.get(name) for name in SCORES if record.get(name) is not None}
    theme = {name: record.pop(name, None) for name in THEME_SCORES}
    theme_scores = {k: v for k, v in theme.items() if v is not None}
    record["theme_scores"] = theme_scores
    source = record.get("aesthetic_source")
    record["theme_bar_rows"] = [
        (f"{name} ({source})" if name == "aesthetic" and source else name,
         f"{min(max(v, 0.0), 1.0) * 100:.1f}", f"{v:.2f}")
        for name, v in theme_scores.items()
    ]  # fmt: skip
    probs = sorted(record.get("role_probs") or (), key=lambda r: -(r.get("p") or 0.0))
    record["role_probs_text"] = " · ".join(f"{r['role']} {r['p']:.2f}" for r in probs
                                           if r.get("p") is not None)  # fmt: skip
    tags = record.get("diversity_tags")
    record["tags_attr"] = "|".join(tags) if tags else ""
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


def _add_list_ranks(frames: list[dict[str, Any]], curated_list: CuratedListDocument | None) -> None:
    """Each frame's rank in the day's curated list (None: not in it, or no list)."""
    ranks = {item.frame_id: item.rank for item in curated_list.items} if curated_list else {}
    for f in frames:
        f["list_rank"] = ranks.get(f["frame_id"])


def _theme_summary(
    frames: list[dict[str, Any]],
    curated_list: CuratedListDocument | None,
    spend: dict[str, Any] | None,
    day_level: dict[str, Any],
) -> dict[str, Any]:
    """Theme, role counts, coverage per axis with low-coverage prompts, and the judge spend.

    Coverage and prompts come from the curated list (every value of every axis, zeros
    too); without it, from curated_frames (the values any frame of the day carries).
    """
    theme = day_level.get("theme")
    if curated_list is not None:
        theme = curated_list.theme.model_dump()
    if theme is not None:
        theme["short"] = (theme.get("hash") or "")[:8]
    kept = sorted((f for f in frames if f["status"] == "kept"),
                  key=lambda f: (f.get("list_rank") is None, f.get("list_rank") or 0))  # fmt: skip
    roles: dict[str, int] = {}
    for f in kept:
        if f.get("role"):
            roles[f["role"]] = roles.get(f["role"], 0) + 1
    if curated_list is not None:
        coverage = {axis: dict(values) for axis, values in curated_list.coverage.items()}
        low = dict(curated_list.low_coverage)
    else:
        coverage = {}
        for f in frames:
            for tag in f.get("diversity_tags") or ():
                axis, _, value = tag.partition(":")
                counts = coverage.setdefault(axis, {})
                counts[value] = counts.get(value, 0) + (f["status"] == "kept")
        coverage = {a: dict(sorted(v.items())) for a, v in sorted(coverage.items())}
        low = {p.partition(":")[0]: p for p in day_level.get("low_coverage", [])}
    return {"theme": theme, "roles": roles, "coverage": coverage, "low_coverage": low,
            "judge": spend}  # fmt: skip


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


def _read_faces(
    store: Store, date: str, present: set[str], tables: dict[str, str]
) -> dict[str, list[dict[str, Any]]] | None:
    """The day's faces by frame id, largest first (None: no usable characters table)."""
    tables[FACES_TABLE] = "ok" if FACES_TABLE in present else NOT_MATERIALIZED
    if FACES_TABLE not in present:
        return None
    table = pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key(FACES_TABLE, date))))
    missing = [c for c in FACE_COLUMNS if c not in table.columns]
    if missing:
        tables[FACES_TABLE] = f"invalid: no column(s) {', '.join(missing)}"
        return None
    out: dict[str, list[dict[str, Any]]] = {}
    for row in table.select(FACE_COLUMNS).sort("frame_id", "face_index").iter_rows(named=True):
        out.setdefault(row["frame_id"], []).append({
            "face_index": row["face_index"], "label": row["label"],
            "matched": bool(row["matched"]), "confidence": _clean(row["confidence"]),
            "box": [row["x0"], row["y0"], row["x1"], row["y1"]],
        })  # fmt: skip
    return out


def label_order(label: str) -> tuple[int, int, str]:
    """Characters by name, then unknown_<n> groups by number."""
    if label.startswith(UNKNOWN_PREFIX):
        number = label[len(UNKNOWN_PREFIX) :]
        return 1, int(number) if number.isdigit() else 0, label
    return 0, 0, label


def _add_faces(frames: list[dict[str, Any]], faces: dict[str, list[dict[str, Any]]] | None) -> None:
    """Each frame's faces and labels; boxes as percentages of the frame for the page."""
    for f in frames:
        if faces is None:
            f["faces"] = f["characters"] = None
            f["face_boxes"], f["characters_attr"] = [], ""
            continue
        found = faces.get(f["frame_id"], [])
        labels = sorted({face["label"] for face in found if face["label"]}, key=label_order)
        f["faces"], f["characters"] = found, labels
        f["characters_attr"] = "|".join(labels)
        width, height = f.get("width"), f.get("height")
        f["face_boxes"] = [_box(face, width, height) for face in found] if width and height else []


def _box(face: dict[str, Any], w: int, h: int) -> dict[str, str]:
    """A face's box on the page: its kind, label and place in % of the frame (clipped to it)."""
    label = face["label"]
    kind = "matched" if face["matched"] else ("unknown" if label else "unlabelled")
    x0, y0, x1, y1 = face["box"]
    x0, x1 = min(max(x0, 0), w), min(max(x1, 0), w)
    y0, y1 = min(max(y0, 0), h), min(max(y1, 0), h)
    if y0 < 0.1 * h:  # no room above the box: the name goes inside it
        kind += " top"
    confidence = face["confidence"]
    title = f"{label or 'no label'}" + (
        f" (confidence {confidence:.2f})" if confidence is not None else ""
    )
    return {
        "kind": kind,
        "label": label or "?",
        "title": title,
        "style": (f"left:{100 * x0 / w:.2f}%;top:{100 * y0 / h:.2f}%;"
                  f"width:{100 * (x1 - x0) / w:.2f}%;height:{100 * (y1 - y0) / h:.2f}%"),
    }  # fmt: skip


def _character_summary(frames: list[dict[str, Any]], known: bool) -> dict[str, Any]:
    """label -> frames showing it and how many of them are kept; faces of the day."""
    if not known:
        return {"characters": {}, "faces": None}
    counts: dict[str, dict[str, Any]] = {}
    total = labelled = with_faces = 0
    for f in frames:
        total += len(f["faces"])
        labelled += sum(1 for face in f["faces"] if face["label"])
        with_faces += bool(f["faces"])
        for label in f["characters"]:
            entry = counts.setdefault(
                label, {"frames": 0, "kept": 0, "matched": not label.startswith(UNKNOWN_PREFIX)}
            )
            entry["frames"] += 1
            entry["kept"] += f["status"] == "kept"
    ordered = {label: counts[label] for label in sorted(counts, key=label_order)}
    faces = {"faces": total, "labelled": labelled, "frames_with_faces": with_faces}
    return {"characters": ordered, "faces": faces}
