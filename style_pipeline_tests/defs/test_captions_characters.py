"""The ``captions`` asset reads the day's ``characters`` table when there is one."""

from __future__ import annotations

import io
import json

import polars as pl
from PIL import Image

from style_pipeline.contracts.characters import CharacterRecord
from style_pipeline.settings import load_settings
from style_pipeline.stages.ontology import snapshot_ontology
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame
from style_pipeline_tests.conftest import materialize_day

WITH, WITHOUT = "2026-11-23", "2026-11-24"
LABEL = pl.Struct({"category": pl.String(), "term": pl.String(), "score": pl.Float64()})


def _write_day(store: Store, day: str) -> None:
    """curated_frames (two kept frames), their JPEGs and the ontology document of ``day``."""
    rows = []
    for frame_id in ("f0", "f1"):
        buffer = io.BytesIO()
        Image.new("RGB", (48, 32), (30, 90, 160)).save(buffer, format="JPEG")
        path = store.put_bytes(buffer.getvalue(), layout.frame_key(day, frame_id))
        labels = [{"category": "subject", "term": "person", "score": 0.3}]
        rows.append({"frame_id": frame_id, "path": path, "keep": True, "labels": labels})
    schema = {"frame_id": pl.String, "path": pl.String, "keep": pl.Boolean}
    curated = pl.DataFrame(rows, schema={**schema, "labels": pl.List(LABEL)})
    _put_table(store, "curated_frames", day, curated)
    snapshot, _ = snapshot_ontology(load_settings().curation)
    document = json.dumps(snapshot.model_dump(mode="json")).encode()
    store.put_bytes(document, layout.document_key("ontology", day))


def _put_table(store: Store, asset: str, day: str, table: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    table.write_parquet(buffer)
    store.put_bytes(buffer.getvalue(), layout.table_key(asset, day))


def _captions(store: Store, day: str) -> pl.DataFrame:
    return pl.read_parquet(io.BytesIO(store.read_bytes(layout.table_key("captions", day))))


def test_captions_name_the_days_matched_characters(monkeypatch, tmp_path):
    references = tmp_path / "characters"
    (references / "grace").mkdir(parents=True)
    (references / "grace" / "character.yaml").write_text("trigger_word: grace_sps\n")
    monkeypatch.setenv("STYLE_PIPELINE_CHARACTERS__REFERENCES_DIR", str(references))
    monkeypatch.setenv("STYLE_PIPELINE_CAPTIONING__CAPTION__BACKEND", "template")
    settings = load_settings()
    trigger = settings.captioning.caption.trigger_word
    store = Store(settings.storage_root())
    for day in (WITH, WITHOUT):
        _write_day(store, day)
    face = {"face_index": 0, "confidence": 0.9, "x0": 1, "y0": 1, "x1": 20, "y1": 20}
    characters = [
        CharacterRecord(frame_id="f0", label="grace", matched=True, **face),
        CharacterRecord(frame_id="f1", label="unknown_0", matched=False, **face),
    ]
    _put_table(store, "characters", WITH, records_to_frame(characters, CharacterRecord))

    result = materialize_day(WITH, "captions")
    assert result.success
    table = _captions(store, WITH)
    assert table["caption"].to_list() == [f"{trigger}, grace_sps, person", f"{trigger}, person"]
    assert table["characters"].to_list() == [["grace"], []]
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["by_character"].value == {"grace": 1}

    assert materialize_day(WITHOUT, "captions").success  # no characters table that day
    table = _captions(store, WITHOUT)
    assert table["caption"].to_list() == [f"{trigger}, person"] * 2
    assert table["characters"].to_list() == [[], []]
