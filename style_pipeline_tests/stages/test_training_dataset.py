"""Stage ``training_dataset``: captions of the window -> folder + summary document."""

import io

import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.training import (
    DatasetSettings,
    TrainingDatasetDocument,
    TrainingSettings,
)
from style_pipeline.stages.training_dataset import build_dataset, dataset_items
from style_pipeline.storage.store import Store

DAY = "2026-01-02"


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (96, 64), (120, 30, 60)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _captions(store: Store) -> dict[str, pl.DataFrame]:
    tables = {}
    for day, ids in (("2026-01-01", ["b"]), (DAY, ["a", "c"])):
        for frame_id in ids:
            store.put_bytes(_jpeg(), f"frames/{day}/{frame_id}.jpg")
        tables[day] = pl.DataFrame(
            {
                "frame_id": ids,
                "path": [f"frames/{day}/{i}.jpg" for i in ids],
                "caption": [f"sps_style, frame {i}" for i in ids],
            }
        )
    return tables


def test_dataset_items_follow_partition_order(tmp_path):
    items = dataset_items(_captions(Store(tmp_path / "s")))
    assert [i.frame_id for i in items] == ["b", "a", "c"]


def test_build_dataset_writes_the_folder_and_returns_its_document(tmp_path):
    store = Store(tmp_path / "s")
    document, facts = build_dataset(_captions(store), store, DAY, TrainingSettings())
    assert isinstance(document, TrainingDatasetDocument)
    assert document.prefix == f"training_dataset/{DAY}"
    assert document.manifest == f"training_dataset/{DAY}/manifest.json"
    assert store.exists(document.manifest)
    assert document.images == 3 and document.partitions == ["2026-01-01", DAY]
    assert facts["images"] == 3 and facts["partitions_in_window"] == 2
    assert facts["folder"] == document.prefix and facts["skipped"] == 0


def test_no_captions_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="nothing to train on"):
        build_dataset({}, Store(tmp_path / "s"), DAY, TrainingSettings())


def test_per_character_layout_reads_the_characters_column(tmp_path):
    store = Store(tmp_path / "s")
    tables = _captions(store)  # the first day predates characters: no column
    tables[DAY] = tables[DAY].with_columns(pl.Series("characters", [["ann"], []]))
    settings = TrainingSettings(dataset=DatasetSettings(layout="per_character"))
    items = dataset_items(tables)
    assert [i.characters for i in items] == [(), ("ann",), ()]
    document, facts = build_dataset(tables, store, DAY, settings)
    assert document.layout == "per_character" and facts["layout"] == "per_character"
    assert document.concepts == {"1_ann": 1, "1_style": 2} == facts["concepts"]
    assert store.exists(f"training_dataset/{DAY}/1_ann/a.jpg")
    assert facts["stale_files_removed"] == 0
    flat, facts = build_dataset(tables, store, DAY, TrainingSettings())  # the same day again
    assert flat.layout == "flat" and flat.concepts == {"1_style": 3}
    assert facts["stale_files_removed"] == 2  # 1_ann/a.jpg and its caption
    assert not store.exists(f"training_dataset/{DAY}/1_ann/a.jpg")
    assert store.list(f"training_dataset/{DAY}") == [
        f"training_dataset/{DAY}/{name}" for name in ("1_style", "manifest.json", "metadata.jsonl")
    ]
