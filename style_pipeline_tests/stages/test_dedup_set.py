"""The dedup_set stage on a local Store: groups, facts, the index key and earlier days."""

from __future__ import annotations

import io

import numpy as np
import polars as pl
from PIL import Image

from style_pipeline.contracts.curation import DedupConfig
from style_pipeline.stages.dedup_set import dedup_day, duplicate_rate
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.factories import jpeg, scene

DAY, NEXT = "2026-11-10", "2026-11-11"


def _frames(store: Store, day: str, images: dict[str, np.ndarray]) -> pl.DataFrame:
    rows = []
    for fid, image in images.items():
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=92)
        rows.append({"frame_id": fid, "path": store.put_bytes(buffer.getvalue(), f"{day}/{fid}")})
    return pl.DataFrame(rows)


def test_the_config_default_is_the_layout_folder():
    assert DedupConfig().index_prefix == layout.DEDUP_INDEX


def test_groups_within_the_day_and_against_earlier_days(tmp_path):
    store = Store(str(tmp_path))
    base, other = scene(1), scene(2)
    frames = _frames(store, DAY, {"a": base, "b": jpeg(base, 60), "c": other})
    quality = pl.DataFrame({"frame_id": ["a", "b", "c"], "score": [1.0, 2.0, 1.0]})
    table, facts = dedup_day(frames, quality, store, DAY, DedupConfig())
    assert table.filter(pl.col("is_duplicate"))["frame_id"].to_list() == ["a"]  # b scores higher
    assert (facts.frames, facts.groups, facts.duplicates) == (3, 2, 1)
    assert facts.duplicates_of_earlier_days == 0
    assert facts.duplicate_rate == duplicate_rate(table) == 1 / 3
    assert store.exists(layout.dedup_index_key(DAY))

    again = _frames(store, NEXT, {"d": jpeg(other, 70)})
    empty_quality = pl.DataFrame(schema={"frame_id": pl.String, "score": pl.Float64})
    table, facts = dedup_day(again, empty_quality, store, NEXT, DedupConfig())
    assert table.row(0, named=True)["duplicate_of"] == "c"
    assert (facts.duplicates, facts.duplicates_of_earlier_days) == (1, 1)


def test_empty_day(tmp_path):
    frames = pl.DataFrame(schema={"frame_id": pl.String, "path": pl.String})
    quality = pl.DataFrame(schema={"frame_id": pl.String, "score": pl.Float64})
    table, facts = dedup_day(frames, quality, Store(str(tmp_path)), DAY, DedupConfig())
    assert table.is_empty()
    assert (facts.frames, facts.groups, facts.duplicate_rate) == (0, 0, 0.0)
