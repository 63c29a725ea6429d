"""Stage ``captions``: the table schema comes from the record contract."""

import polars as pl

from style_pipeline.contracts.captioning import CaptionRecord
from style_pipeline.stages.captions import CAPTION_SCHEMA, kept_frames
from style_pipeline.storage.tables import polars_schema


def test_caption_schema_is_the_record_schema():
    assert CAPTION_SCHEMA == polars_schema(CaptionRecord)
    assert CAPTION_SCHEMA["violations"] == pl.List(pl.String())
    assert CAPTION_SCHEMA["valid"] == pl.Boolean()


def test_kept_frames_in_frame_id_order():
    curated = pl.DataFrame({"frame_id": ["c", "a", "b"], "keep": [True, True, False]})
    assert kept_frames(curated)["frame_id"].to_list() == ["a", "c"]
