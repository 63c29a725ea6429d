"""The curated_list stage: a validated document in role order, judge spend, the export folder."""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from style_pipeline.contracts.curation import (
    CuratedListDocument,
    CurationSettings,
    JudgeSpend,
    JudgmentsDocument,
    Overrides,
    SelectionConfig,
)
from style_pipeline.curation.themes import load_theme
from style_pipeline.stages.curated_frames import curate_partition
from style_pipeline.stages.curated_list import build_curated_list, role_order
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.stages.test_curated_frames import _theme_tables

DAY = "2026-11-10"
NOW = dt.datetime(2026, 11, 10, 12, tzinfo=dt.UTC)


def _day(tmp_path, budget: int = 6):
    theme = load_theme("default", "data/themes")
    tables = _theme_tables(theme)
    curated, _ = curate_partition(
        tables, SelectionConfig(budget=budget), Overrides(), theme=theme,
        axis_fn=lambda v: [{"scene": "city"} for _ in v], palette_fn=lambda k: ["cool"] * len(k),
    )  # fmt: skip
    store = Store(str(tmp_path / "storage"))
    for path in curated["path"]:
        store.put_bytes(f"jpeg of {path}".encode(), path)
    return theme, tables, curated, store


def test_document_validates_in_role_order_with_tags_and_exports(tmp_path):
    theme, tables, curated, store = _day(tmp_path)
    spend = JudgeSpend(judge="heuristic", pairs=12, pair_budget=400, cache_hits=3)
    judgments = JudgmentsDocument(date=DAY, theme_hash=theme.theme_hash(), spend=spend)
    store.put_bytes(judgments.model_dump_json().encode(), layout.judgments_key(DAY))
    config = CurationSettings(selection=SelectionConfig(budget=6))
    doc, facts = build_curated_list(
        curated, tables.scores, tables.ranking, store, DAY, theme, config, now=NOW
    )
    again = CuratedListDocument.model_validate(json.loads(doc.model_dump_json()))
    assert again == doc and doc.theme.hash == theme.theme_hash()
    roles = [item.role for item in doc.items]
    assert roles == ["opener", "anchor", "anchor", "anchor", "body", "closer"]
    assert [i.rank for i in doc.items] == list(range(1, 7))
    assert doc.items[0].frame_id == "f002" and doc.items[0].rationale == "sharper"
    assert "hero of cluster" in " ".join(doc.items[0].reasons)
    first = doc.items[0]
    assert set(first.scores) >= {"q_tech", "vibe", "total_prelim", "role_probability"}
    assert first.tags["scene"] == "city" and "palette:cool" in first.diversity_tags
    assert sum(doc.coverage["palette"].values()) == 6 and doc.coverage["palette"]["cool"] == 6
    assert "need more warm shots? (none today)" in doc.low_coverage["palette"]
    assert doc.audit.judge == spend and facts.judgments_found
    assert doc.audit.optimizer["role_quotas"]["body"] == 40 and doc.audit.seeds["judge"] == 0
    assert facts.roles == {"opener": 1, "anchor": 3, "body": 1, "closer": 1}
    exported = store.list(f"{layout.CURATED_LIST}/{DAY}/export")
    assert exported == [i.artifacts["export"] for i in doc.items]
    assert exported[0].endswith("/0001_f002.jpg")
    assert store.read_bytes(exported[0]) == store.read_bytes(first.artifacts["frame"])


def test_a_smaller_rerun_removes_stale_exports_and_absent_judgments_read_as_zero(tmp_path):
    theme, tables, curated, store = _day(tmp_path)
    config = CurationSettings()
    doc, facts = build_curated_list(curated, tables.scores, None, store, DAY, theme, config)
    assert facts.exported == 6 and not facts.judgments_found and doc.audit.judge.pairs == 0
    smaller = curated.with_columns(keep=pl.col("keep") & (pl.col("role") != "body"))
    doc2, facts2 = build_curated_list(smaller, tables.scores, None, store, DAY, theme, config)
    assert (facts2.exported, facts2.removed_exports) == (
        5,
        2,
    )  # 0005_body goes; the closer moves 0006 -> 0005
    assert len(store.list(f"{layout.CURATED_LIST}/{DAY}/export")) == 5
    assert all(item.elo is None for item in doc2.items)


def test_role_order_puts_extras_before_the_last_role():
    theme = load_theme("default", "data/themes")
    assert role_order(theme) == ["opener", "anchor", "body", "extra", "closer"]
