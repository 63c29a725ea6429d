"""The ``curated_list`` stage: the day's kept frames as a portable, reasoned, ordered list.

Items follow the theme's role order (opener ... closer; frames beyond every quota,
``extra``, just before the last role), within a role heroes first, then Elo, then
total_prelim. Each item carries its scores, ``axis:value`` tags, reasons, storage keys and
the judge's Elo and rationale. The chosen JPEGs are copied in rank order into
``curated_list/<date>/export/``; copies of an earlier run that are no longer chosen go.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import polars as pl

from style_pipeline.contracts.curation import (
    CuratedListAudit,
    CuratedListDocument,
    CuratedListItem,
    CurationSettings,
    JudgeSpend,
    JudgmentsDocument,
    ThemeRef,
)
from style_pipeline.contracts.themes import SCORES, Theme
from style_pipeline.curation import coverage
from style_pipeline.curation.roles import EXTRA
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

SCORE_COLUMNS = (*SCORES, "total_prelim")


@dataclass(frozen=True)
class ListFacts:
    """What the ``curated_list`` asset reports besides the document."""

    items: int
    roles: dict[str, int]
    judge: JudgeSpend
    exported: int
    removed_exports: int
    judgments_found: bool


def role_order(theme: Theme) -> list[str]:
    names = [r.name for r in theme.roles]
    return [*names[:-1], EXTRA, names[-1]] if len(names) > 1 else [*names, EXTRA]


def _ordered(kept: pl.DataFrame, theme: Theme) -> pl.DataFrame:
    order = {name: i for i, name in enumerate(role_order(theme))}
    return kept.with_columns(
        _role_pos=pl.col("role").replace_strict(order, default=len(order), return_dtype=pl.Int64)
    ).sort(
        ["_role_pos", "hero", "elo", "total_prelim", "frame_id"],
        descending=[False, True, True, True, False],
        nulls_last=True,
    )


def _reasons(row: dict, rank: dict) -> list[str]:
    out = [row["reason"]]
    if row["role"] is not None:
        p = row["role_probability"]
        out.append(f"role {row['role']}" + (f" (p={p:.2f})" if p is not None else ""))
    if row["hero"]:
        out.append(f"hero of cluster {row['cluster']}")
    if rank.get("alternate_rank") is not None:
        out.append(f"alternate {rank['alternate_rank']} in cluster {row['cluster']}")
    return out


def judge_spend(store: Store, partition: str, theme: Theme) -> tuple[JudgeSpend, bool]:
    """The day's judge spend from ``ranking/<date>/judgments.json`` (zeros when absent)."""
    key = layout.judgments_key(partition)
    if not store.exists(key):
        return JudgeSpend(judge=theme.judge.kind), False
    return JudgmentsDocument.model_validate_json(store.read_bytes(key)).spend, True


def build_curated_list(
    curated: pl.DataFrame,
    scores: pl.DataFrame | None,
    ranking: pl.DataFrame | None,
    store: Store,
    partition: str,
    theme: Theme,
    config: CurationSettings,
    *,
    now: dt.datetime | None = None,
) -> tuple[CuratedListDocument, ListFacts]:
    """The day's ``CuratedListDocument`` from ``curated_frames`` (+ scores, ranking)."""
    kept = _ordered(curated.filter(pl.col("keep")), theme)
    score_rows = {} if scores is None else {r["frame_id"]: r for r in scores.iter_rows(named=True)}
    rank_rows = {} if ranking is None else {r["frame_id"]: r for r in ranking.iter_rows(named=True)}
    items = []
    for rank, row in enumerate(kept.iter_rows(named=True), start=1):
        fid = row["frame_id"]
        tags = dict(t.split(":", 1) for t in row["diversity_tags"])
        found = score_rows.get(fid)
        values = {c: float(found[c]) for c in SCORE_COLUMNS} if found else {}
        values["quality"] = float(row["quality"])
        if row["role_probability"] is not None:
            values["role_probability"] = float(row["role_probability"])
        judged = rank_rows.get(fid, {})
        items.append(
            CuratedListItem(
                rank=rank,
                frame_id=fid,
                cluster_id=int(row["cluster"]),
                role=row["role"] or EXTRA,
                scores=values,
                diversity_tags=list(row["diversity_tags"]),
                tags=tags,
                reasons=_reasons(row, judged),
                artifacts={"frame": row["path"], "export": layout.export_key(partition, rank, fid)},
                elo=judged.get("elo"),
                rationale=judged.get("rationale"),
            )
        )
    all_tags = [dict(t.split(":", 1) for t in tags) for tags in curated["diversity_tags"]]
    picked = [i for i, keep in enumerate(curated["keep"]) if keep]
    axes = coverage.axis_values(theme)
    spend, found_judgments = judge_spend(store, partition, theme)
    sel = config.selection
    document = CuratedListDocument(
        date=partition,
        theme=ThemeRef(name=theme.name, version=theme.version, hash=theme.theme_hash()),
        items=items,
        coverage=coverage.coverage_counts(all_tags, picked, axes),
        low_coverage=coverage.low_coverage_prompts(all_tags, picked, axes),
        audit=CuratedListAudit(
            created_at=now or dt.datetime.now(dt.UTC),
            optimizer={
                "objective": "theme_greedy" if scores is not None else sel.objective,
                **sel.model_dump(exclude={"seed"}),
                "role_quotas": {r.name: r.quota for r in theme.roles},
                "axis_emphasis": {a: theme.emphasis(a) for a in axes},
            },
            judge=spend,
            seeds={
                "selection": sel.seed,
                "judge": theme.judge.seed,
                "knn": config.clusters.knn.seed,
            },
        ),
    )
    exported, removed = export_items(store, document)
    roles: dict[str, int] = {}
    for item in items:
        roles[item.role] = roles.get(item.role, 0) + 1
    return document, ListFacts(len(items), roles, spend, exported, removed, found_judgments)


def export_items(store: Store, document: CuratedListDocument) -> tuple[int, int]:
    """Copy each item's frame to its export key; delete stale copies. (copied, removed)."""
    wanted = {item.artifacts["export"]: item.artifacts["frame"] for item in document.items}
    for target, source in wanted.items():
        store.put_bytes(store.read_bytes(source), target)
    folder = layout.export_key(document.date, 1, "x").rsplit("/", 1)[0]
    stale = [key for key in store.list(folder) if key not in wanted]
    for key in stale:
        store.delete(key)
    return len(wanted), len(stale)
