"""curated_frames with the day's ``characters`` table (CharacterRecord rows, no detector):
the characters column, counts in the facts, share limits in the plain and the theme path."""

from __future__ import annotations

import polars as pl
import pytest

from style_pipeline.contracts.characters import CharacterRecord, CharacterSpec
from style_pipeline.contracts.curation import (
    CurationSettings,
    OntologySnapshot,
    Overrides,
    SelectionConfig,
)
from style_pipeline.curation.themes import load_theme
from style_pipeline.stages import curated_frames
from style_pipeline.stages.curated_frames import (
    DayTables,
    curate_day,
    curate_partition,
    frame_characters,
)
from style_pipeline.stages.ontology import snapshot_ontology
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame
from style_pipeline_tests.stages.test_curated_frames import DAY, _tables, _theme_tables


def _face(fid: str, index: int, label: str | None) -> CharacterRecord:
    matched = label is not None and not label.startswith("unknown_")
    return CharacterRecord(
        frame_id=fid, face_index=index, label=label, matched=matched,
        distance=0.3 if matched else None, margin=0.2 if matched else None,
        confidence=0.8 if label else 0.0, x0=10 * index, y0=5, x1=10 * index + 8, y1=13,
    )  # fmt: skip


def _characters(ids: list[str]) -> pl.DataFrame:
    """ada in every even frame; bo with ada in every fourth; an unknown group; a lone face."""
    rows = []
    for k, fid in enumerate(ids):
        if k % 2 == 0:
            rows.append(_face(fid, 0, "ada"))
        if k % 4 == 0:
            rows.append(_face(fid, 1, "bo"))
        if k % 3 == 1:
            rows.append(_face(fid, 0, "unknown_0"))
        if k == 5:
            rows.append(_face(fid, 1, None))
    return records_to_frame(rows, CharacterRecord)


def _with_characters(tables: DayTables) -> DayTables:
    ids = tables.frames["frame_id"].to_list()
    return DayTables(*[getattr(tables, f) for f in (
        "frames", "quality_scores", "dedup_set", "embeddings", "clusters", "scores", "ranking"
    )], characters=_characters(ids))  # fmt: skip


def test_frame_characters_lists_labels_per_frame():
    ids = ["f000", "f001", "f004", "f005", "zzz"]
    table = _characters(["f000", "f001", "f002", "f003", "f004", "f005"])
    assert frame_characters(table, ids) == [
        ["ada", "bo"],
        ["unknown_0"],
        ["ada", "bo", "unknown_0"],
        [],
        [],
    ]
    assert frame_characters(None, ids) is None
    with pytest.raises(ValueError, match="lacks column"):
        frame_characters(table.drop("label"), ids)


def test_without_a_characters_table_the_selection_is_unchanged():
    tables = _tables()
    plain, _ = curate_partition(tables, SelectionConfig(budget=6), Overrides())
    specs = {"ada": CharacterSpec(name="ada", max_share=0.2)}
    same, result = curate_partition(tables, SelectionConfig(budget=6), Overrides(),
                                    character_specs=specs)  # fmt: skip
    assert same.equals(plain) and result.characters == {}
    assert same["characters"].to_list() == [[] for _ in range(same.height)]


def test_characters_column_counts_and_max_share():
    tables = _with_characters(_tables())
    cfg = SelectionConfig(budget=6, per_cluster_k=None)
    counted, _ = curate_partition(tables, cfg, Overrides())
    ada_kept = counted.filter(pl.col("keep") & pl.col("characters").list.contains("ada")).height
    assert ada_kept > 2  # the cap below binds
    specs = {"ada": CharacterSpec(name="ada", max_share=1 / 3)}
    table, result = curate_partition(tables, cfg, Overrides(), character_specs=specs)
    assert table["characters"][0].to_list() == ["ada", "bo"]
    kept = table.filter(pl.col("keep"))
    assert kept.height == 6
    assert kept.filter(pl.col("characters").list.contains("ada")).height == 2
    assert table.filter(pl.col("code") == "character_share").height > 0
    ada, bo = result.characters["ada"], result.characters["bo"]
    assert (ada.frames, ada.kept, ada.allowed) == (9, 2, 2)
    assert bo.frames == 5 and bo.allowed is None
    assert set(result.unknown_groups) == {"unknown_0"}


def test_theme_path_honours_the_limits_too():
    theme = load_theme("default", "data/themes")
    tables = _with_characters(_theme_tables(theme))
    specs = {"ada": CharacterSpec(name="ada", max_share=0.2),
             "bo": CharacterSpec(name="bo", min_share=0.3)}  # fmt: skip
    zero_shot = lambda v: [{"scene": "city"} for _ in v]  # noqa: E731
    table, result = curate_partition(
        tables, SelectionConfig(budget=6), Overrides(), theme=theme, axis_fn=zero_shot,
        character_specs=specs,
    )  # fmt: skip
    kept = table.filter(pl.col("keep"))
    assert kept.height == 6 and kept["role"].null_count() == 0  # every kept frame has a role
    with_ada = kept.filter(pl.col("characters").list.contains("ada")).height
    with_bo = kept.filter(pl.col("characters").list.contains("bo")).height
    assert with_ada == 1  # floor(0.2 * 6); bo appears only with ada, so bo's minimum
    assert with_bo == 1  # (ceil(0.3 * 6) = 2) is held back by ada's cap: reported, not raised
    assert result.characters["bo"].wanted == 2
    assert result.character_notes == [
        "bo: 1 kept frames, min_share 0.3 wants 2: 4 eligible frames show bo today; "
        "frames with ada are at their max_share"
    ]
    assert "theme_greedy" in result.notes[-1] and "character shares" in result.notes[-1]


def test_curate_day_reports_counts_in_its_facts(tmp_path, monkeypatch):
    config = CurationSettings(selection=SelectionConfig(budget=4))
    ontology, _ = snapshot_ontology(config)
    document = OntologySnapshot.model_validate(ontology.model_dump(mode="json"))
    no_labels = lambda vectors: [{} for _ in vectors]  # noqa: E731
    # the frames' ontology labels are not what this test is about: no CLIP model needed
    monkeypatch.setattr(curated_frames, "clip_labeller", lambda *args: no_labels)
    specs = {"ada": CharacterSpec(name="ada", min_share=0.5), "cy": CharacterSpec(name="cy")}
    _, facts = curate_day(_with_characters(_tables()), document, Store(str(tmp_path / "ov")),
                          DAY, config, character_specs=specs)  # fmt: skip
    assert facts.characters["ada"].kept >= 2 and facts.characters["ada"].wanted == 2
    assert facts.characters["cy"].frames == 0
    assert set(facts.unknown_groups) == {"unknown_0"}
    assert facts.character_notes == ()
