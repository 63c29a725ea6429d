"""The curated_frames stage: a decision per frame, overrides, labels, and upstream checks."""

from __future__ import annotations

import polars as pl
import pytest

from style_pipeline.contracts.curation import (
    CurationSettings,
    OntologySnapshot,
    Overrides,
    SelectionConfig,
)
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.models import load_model
from style_pipeline.stages.clusters import cluster_partition
from style_pipeline.stages.curated_frames import DayTables, curate_day, curate_partition
from style_pipeline.stages.ontology import snapshot_ontology
from style_pipeline.storage.store import Store
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
