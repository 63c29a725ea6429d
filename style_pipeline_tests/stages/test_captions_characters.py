"""Stage ``captions`` with the day's ``characters`` table: matched characters are named."""

from __future__ import annotations

import io

import polars as pl
import pytest
from PIL import Image

from style_pipeline.captioning.vocabulary import load_default_ontology
from style_pipeline.contracts.captioning import CaptionConfig
from style_pipeline.contracts.characters import CharacterRecord, CharacterSettings
from style_pipeline.stages.captions import CAPTION_SCHEMA, caption_partition, character_specs
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame

DAY = "2026-04-05"
TRIGGER = "sps_style"
LABELS = pl.List(pl.Struct({"category": pl.String(), "term": pl.String(), "score": pl.Float64()}))


def _curated(store: Store, ids: list[str]) -> pl.DataFrame:
    for frame_id in ids:
        buffer = io.BytesIO()
        Image.new("RGB", (48, 32), (90, 40, 10)).save(buffer, format="JPEG")
        store.put_bytes(buffer.getvalue(), f"frames/{DAY}/{frame_id}.jpg")
    labels = [{"category": "subject", "term": "portrait", "score": 0.9}]
    return pl.DataFrame(
        {
            "frame_id": ids,
            "keep": [True] * len(ids),
            "path": [f"frames/{DAY}/{i}.jpg" for i in ids],
            "labels": [labels] * len(ids),
        },
        schema_overrides={
            "frame_id": pl.String(),
            "keep": pl.Boolean(),
            "path": pl.String(),
            "labels": LABELS,
        },  # fmt: skip
    )


def _characters(rows: list[tuple[str, int, str | None, bool]]) -> pl.DataFrame:
    records = [
        CharacterRecord(
            frame_id=f,
            face_index=i,
            label=label,
            matched=matched,
            confidence=0.8,
            x0=0,
            y0=0,
            x1=8,
            y1=8,
        )  # fmt: skip
        for f, i, label, matched in rows
    ]
    return records_to_frame(records, CharacterRecord)


@pytest.fixture
def references(tmp_path):
    """ann (trigger ohwx_ann, alias annie) and bob (no character.yaml: trigger = name)."""
    root = tmp_path / "characters"
    (root / "ann").mkdir(parents=True)
    (root / "ann" / "character.yaml").write_text("trigger_word: ohwx_ann\naliases: [annie]\n")
    (root / "bob").mkdir()
    return CharacterSettings(references_dir=str(root))


def test_matched_characters_follow_the_style_trigger(tmp_path, references):
    store = Store(tmp_path / "s")
    curated = _curated(store, ["a", "b", "c", "d"])
    characters = _characters(
        [
            ("a", 0, "bob", True),
            ("a", 1, "ann", True),
            ("b", 0, "unknown_0", False),  # an unknown group names no one
            ("c", 0, None, False),
            ("c", 1, "ann", True),
        ]
    )
    specs = character_specs(characters, references)
    config = CaptionConfig(backend="template", trigger_word=TRIGGER)
    table, facts = caption_partition(
        curated, load_default_ontology(), store, config, characters=characters, specs=specs
    )
    captions = dict(zip(table["frame_id"], table["caption"], strict=True))
    assert captions["a"] == f"{TRIGGER}, bob, ohwx_ann, portrait"
    assert captions["b"] == captions["d"] == f"{TRIGGER}, portrait"
    assert captions["c"] == f"{TRIGGER}, ohwx_ann, portrait"
    assert table["valid"].all() and table["repairs"].list.len().sum() == 0
    named = dict(zip(table["frame_id"], table["characters"].to_list(), strict=True))
    assert named == {"a": ["bob", "ann"], "b": [], "c": ["ann"], "d": []}
    assert facts["captions_with_characters"] == 2
    assert facts["by_character"] == {"ann": 2, "bob": 1}
    assert table.schema == CAPTION_SCHEMA


def test_no_characters_table_captions_as_before(tmp_path, references):
    store = Store(tmp_path / "s")
    curated = _curated(store, ["a"])
    config = CaptionConfig(backend="template", trigger_word=TRIGGER)
    assert character_specs(None, references) is None
    table, facts = caption_partition(curated, load_default_ontology(), store, config)
    assert table["caption"].to_list() == [f"{TRIGGER}, portrait"]
    assert table["characters"].to_list() == [[]]
    assert facts["captions_with_characters"] == 0 and facts["by_character"] == {}


def test_characters_disabled_names_no_one(tmp_path, references):
    table = _characters([("a", 0, "ann", True)])
    assert character_specs(table, references.model_copy(update={"enabled": False})) is None
    assert character_specs(table, None) is None
    missing = CharacterSettings(references_dir=str(tmp_path / "nowhere"))
    assert character_specs(table, missing) == {}  # names then become their own trigger


def test_empty_day_keeps_the_schema(tmp_path, references):
    store = Store(tmp_path / "s")
    curated = _curated(store, [])
    config = CaptionConfig(backend="template", trigger_word=TRIGGER)
    table, facts = caption_partition(
        curated, load_default_ontology(), store, config, characters=_characters([]), specs={}
    )
    assert table.is_empty() and table.schema == CAPTION_SCHEMA
    assert facts["captions_with_characters"] == 0
