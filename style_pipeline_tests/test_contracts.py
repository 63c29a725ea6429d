"""Contracts: polars schemas, typed empty tables, exported JSON Schemas are current."""

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from style_pipeline.contracts import (
    FrameRecord,
    MediaKind,
    MediaStatus,
    RawMediaRecord,
    RejectReason,
)
from style_pipeline.contracts.schemas import ALL_MODELS, SCHEMA_DIR, export_json_schemas
from style_pipeline.storage.tables import polars_schema, records_to_frame


def _raw(**kw):
    base = dict(
        media_id="a" * 64,
        source_name="x.mp4",
        kind=MediaKind.VIDEO,
        status=MediaStatus.ACCEPTED,
        arrival_date=dt.date(2026, 11, 21),
    )
    return RawMediaRecord(**{**base, **kw})


def test_empty_partition_keeps_typed_columns():
    table = records_to_frame([], RawMediaRecord)
    assert table.is_empty()
    assert table.schema == polars_schema(RawMediaRecord)
    assert table.schema["arrival_date"] == pl.Date
    assert table.schema["reject_reason"] == pl.String


def test_enums_are_stored_as_their_codes():
    table = records_to_frame(
        [_raw(), _raw(status=MediaStatus.REJECTED, reject_reason=RejectReason.TRUNCATED)],
        RawMediaRecord,
    )
    assert table["status"].to_list() == ["accepted", "rejected"]
    assert table["reject_reason"].to_list() == [None, "truncated"]


def test_extra_fields_are_refused():
    with pytest.raises(ValueError):
        _raw(colour="red")


@pytest.mark.parametrize("model", [RawMediaRecord, FrameRecord])
def test_every_field_has_a_polars_type(model):
    assert list(polars_schema(model)) == list(model.model_fields)


def test_committed_json_schemas_are_current(tmp_path):
    written = export_json_schemas(ALL_MODELS, tmp_path)
    for path in written:
        committed = SCHEMA_DIR / path.name
        assert committed.is_file(), (
            f"run `python -m style_pipeline.contracts` to export {path.name}"
        )
        assert json.loads(committed.read_text()) == json.loads(Path(path).read_text())
