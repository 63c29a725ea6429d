"""The quality_scores stage on a local Store: rows in input order, gate facts, empty days."""

from __future__ import annotations

import io

import polars as pl
from PIL import Image

from style_pipeline.contracts.curation import IqaConfig, QualityConfig, QualityRecord
from style_pipeline.stages.quality_scores import pass_rate, score_partition
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.factories import scene

DAY = "2026-11-10"
CONFIG = QualityConfig(iqa=IqaConfig(brisque=False, clip_iqa=False))


def _frames(store: Store, images: dict[str, Image.Image]) -> pl.DataFrame:
    rows = []
    for fid, image in images.items():
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        key = store.put_bytes(buffer.getvalue(), layout.frame_key(DAY, fid))
        rows.append({"frame_id": fid, "media_id": f"m-{fid}", "timestamp_s": 0.0, "path": key})
    return pl.DataFrame(rows)


def test_scores_every_frame_and_reports_the_gate(tmp_path):
    store = Store(str(tmp_path))
    images = {
        "b-sharp": Image.fromarray(scene(1, 384, 512)),
        "a-dark": Image.new("RGB", (512, 384), (3, 3, 3)),
    }
    table, facts = score_partition(_frames(store, images), store, CONFIG)
    assert table.columns == list(QualityRecord.model_fields)
    assert table["frame_id"].to_list() == ["b-sharp", "a-dark"]
    assert table["passed"].to_list() == [True, False]
    assert "underexposed" in table["reasons"][1].to_list()
    assert (facts.frames, facts.passed, facts.pass_rate) == (2, 1, 0.5)
    assert facts.pass_rate == pass_rate(table)
    assert facts.scorers["brisque"] == facts.scorers["clip_iqa"] == "disabled"
    assert set(facts.scorers) == {"faces", "brisque", "clip_iqa"}


def test_empty_day_gives_a_typed_empty_table(tmp_path):
    frames = pl.DataFrame(schema={"frame_id": pl.String, "path": pl.String})
    table, facts = score_partition(frames, Store(str(tmp_path)), CONFIG)
    assert table.is_empty() and table.columns == list(QualityRecord.model_fields)
    assert (facts.frames, facts.passed, facts.pass_rate) == (0, 0, 0.0)
