"""The curated_frames stage: a decision per frame, overrides, labels, and upstream checks."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from style_pipeline.contracts.curation import (
    CurationSettings,
    OntologySnapshot,
    Overrides,
    RankingRecord,
    ScoreRecord,
    SelectionConfig,
)
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.contracts.themes import SCORES
from style_pipeline.curation.themes import load_theme
from style_pipeline.models import load_model
from style_pipeline.stages.clusters import cluster_partition
from style_pipeline.stages.curated_frames import DayTables, curate_day, curate_partition
from style_pipeline.stages.curated_frames_theme import THEME_COLUMNS
from style_pipeline.stages.ontology import snapshot_ontology
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame
from style_pipeline_tests.curation.test_clustering import blobs
from style_pipeline_tests.stages.test_clusters import embeddings_table

DAY = "2026-11-10"


def _tables(dim: int = 16, model_id: str = "m") -> DayTables:
    vectors, _ = blobs(6, 3, dim=dim)
    embeddings = embeddings_table(vectors).with_columns(model_id=pl.lit(model_id))
    ids = embeddings["frame_id"].to_list()
    frames = pl.DataFrame({"frame_id": ids, "path": [f"p/{i}" for i in ids], "media_id": ids})
    quality = pl.DataFrame(
        {
            "frame_id": ids,
            "passed": [i != "f000" for i in ids],
            "reasons": [["blurry"] if i == "f000" else [] for i in ids],
            "score": [1.0 + n / 100 for n in range(len(ids))],
        }
    )
    dedup = pl.DataFrame(
        {"frame_id": ids, "duplicate_of": ["f002" if i == "f001" else None for i in ids]}
    )
    clusters, _ = cluster_partition(embeddings, CurationSettings().clusters)
    return DayTables(frames, quality, dedup, embeddings, clusters)


def test_curate_partition_decides_every_frame():
    tables = _tables()
    overrides = Overrides(lock_in=["f003"], exclude=["f004", "zzz"])
    fake_labels = lambda vectors: [{"subject": [("cat", 0.5)]} for _ in vectors]  # noqa: E731
    table, result = curate_partition(tables, SelectionConfig(budget=4), overrides, fake_labels)
    assert table["frame_id"].to_list() == tables.frames["frame_id"].to_list()
    decided = dict(zip(table["frame_id"], table["keep"], strict=True))
    assert 1 <= sum(decided.values()) <= 4
    assert decided["f003"] and not decided["f004"]
    assert not decided["f000"] and not decided["f001"]  # failed the gate; a duplicate
    assert result.unknown_override_ids == ["zzz"]
    assert table["path"].to_list() == tables.frames["path"].to_list()
    assert table["labels"][0].to_list() == [{"category": "subject", "term": "cat", "score": 0.5}]
    assert table["reason"].str.len_chars().min() > 0


def test_a_frame_missing_upstream_is_an_error():
    tables = _tables()
    short = DayTables(
        tables.frames,
        tables.quality_scores.head(3),
        tables.dedup_set,
        tables.embeddings,
        tables.clusters,
    )
    with pytest.raises(ValueError, match="missing upstream"):
        curate_partition(short, SelectionConfig(), Overrides())


def test_curate_day_reads_overrides_and_labels_with_the_embedding_model(tmp_path):
    clip = ModelConfig(profile="tiny", cache_dir=str(tmp_path / "models"))
    loaded = load_model(clip)
    config = CurationSettings(clip=clip, selection=SelectionConfig(budget=3))
    ontology, _ = snapshot_ontology(config)
    overrides = Store(str(tmp_path / "overrides"))
    overrides.put_bytes(b"lock_in: [f005]\nexclude: [f006]\n", f"{DAY}.yml")
    tables = _tables(loaded.dim, loaded.model_id)
    document = OntologySnapshot.model_validate(ontology.model_dump(mode="json"))
    table, facts = curate_day(tables, document, overrides, DAY, config)
    decided = dict(zip(table["frame_id"], table["keep"], strict=True))
    assert decided["f005"] and not decided["f006"]
    assert (facts.frames, facts.kept, facts.lock_in, facts.exclude) == (
        18,
        sum(decided.values()),
        1,
        1,
    )
    assert facts.kept <= 3 and facts.unknown_override_ids == ()
    assert 0.0 <= facts.coverage <= 1.0
    assert all(len(labels) > 0 for labels in table["labels"].to_list())

    other = _tables(loaded.dim, "another-model")
    with pytest.raises(ValueError, match="re-materialize embeddings"):
        curate_day(other, document, overrides, DAY, config)


def _theme_tables(theme, *, hash_: str | None = None) -> DayTables:
    """_tables plus measured columns, a scorecard (f007 fails low_q_tech) and a ranking."""
    base = _tables()
    ids = base.frames["frame_id"].to_list()
    n = len(ids)
    quality = base.quality_scores.with_columns(
        mean_luminance=pl.Series([0.1 if i % 3 == 0 else 0.5 for i in range(n)]),
        face_count=pl.Series([i % 4 for i in range(n)]),
        width=pl.Series([640 if i % 2 else 360 for i in range(n)]),
        height=pl.Series([360 if i % 2 else 640 for i in range(n)]),
    )
    rng = np.random.default_rng(0)
    scores = records_to_frame(
        [
            ScoreRecord(
                frame_id=fid, **dict(zip(SCORES, rng.uniform(0.3, 0.9, 5), strict=True)),
                aesthetic_source="reward_model", text_fraction=0.0, calm_fraction=0.3,
                thirds_distance=0.1, border_cut=False, total_prelim=0.3 + 0.02 * k,
                passed=fid != "f007", reasons=["low_q_tech"] if fid == "f007" else [],
                scorecard_version="1", theme=theme.name, theme_hash=hash_ or theme.theme_hash(),
            )
            for k, fid in enumerate(ids)
        ],
        ScoreRecord,
    )  # fmt: skip
    clusters = dict(zip(base.clusters["frame_id"], base.clusters["cluster"], strict=True))
    ranking = records_to_frame(
        [
            RankingRecord(
                frame_id=fid, cluster=clusters[fid], contender=True, elo=1500.0 + k,
                hero=fid == "f002", judge="heuristic", theme_hash=theme.theme_hash(),
                rationale="sharper" if fid == "f002" else None,
            )
            for k, fid in enumerate(ids[:10])
        ],
        RankingRecord,
    )  # fmt: skip
    return DayTables(base.frames, quality, base.dedup_set, base.embeddings, base.clusters,
                     scores, ranking)  # fmt: skip


def test_theme_selection_roles_tags_constraints_and_low_coverage():
    theme = load_theme("default", "data/themes")
    tables = _theme_tables(theme)
    zero_shot = lambda v: [{"scene": "city"} for _ in v]  # noqa: E731
    palette = lambda keys: ["warm" for _ in keys]  # noqa: E731
    table, result = curate_partition(
        tables, SelectionConfig(budget=6), Overrides(lock_in=["f010"]), theme=theme,
        axis_fn=zero_shot, palette_fn=palette,
    )  # fmt: skip
    assert table.columns[:11] == [
        "frame_id", "keep", "code", "reason", "cluster", "quality", "pick", "gain",
        "path", "media_id", "labels",
    ]  # fmt: skip
    assert table.columns[11:-1] == list(THEME_COLUMNS)
    assert table.columns[-1] == "characters" and table["characters"].list.len().sum() == 0
    kept = table.filter(pl.col("keep"))
    assert kept.height == 6 and "f010" in kept["frame_id"].to_list()
    roles = kept["role"].to_list()
    assert roles.count("opener") == 1 and roles.count("closer") == 1
    assert roles.count("anchor") == 3 and roles.count("body") == 1
    f002 = table.filter(pl.col("frame_id") == "f002").row(0, named=True)
    assert f002["keep"] and f002["hero"] and f002["role"] == "opener"  # the hero opens
    f007 = table.filter(pl.col("frame_id") == "f007").row(0, named=True)
    assert f007["code"] == "ineligible" and "low_q_tech" in f007["reason"]
    assert table.filter(~pl.col("keep"))["role"].null_count() == table.height - 6
    tags = table.filter(pl.col("frame_id") == "f003")["diversity_tags"].to_list()[0]
    assert tags == [
        "orientation:landscape", "palette:warm", "people:few", "scene:city", "time_of_day:night"
    ]  # fmt: skip
    assert all(abs(sum(r["p"] for r in row) - 1) < 1e-9 for row in table["role_probs"])
    prompts = table["low_coverage"][0].to_list()
    assert any(
        p.startswith("scene: ") and "need more water shots? (none today)" in p for p in prompts
    )
    assert table["low_coverage"].list.len().n_unique() == 1  # the day's prompts on every row
    assert "theme_greedy" in result.notes[-1]


def test_without_scores_the_theme_columns_are_empty():
    table, _ = curate_partition(_tables(), SelectionConfig(budget=4), Overrides(),
                                theme=load_theme("default", "data/themes"))  # fmt: skip
    assert table["role"].null_count() == table.height
    assert table["diversity_tags"].list.len().sum() == 0


def test_scores_of_another_theme_are_refused():
    theme = load_theme("default", "data/themes")
    tables = _theme_tables(theme, hash_="0" * 64)
    with pytest.raises(ValueError, match="re-materialize scores"):
        curate_partition(tables, SelectionConfig(), Overrides(), theme=theme)
