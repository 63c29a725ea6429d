"""Stage ``training_dataset``: captions of the window -> folder + summary document."""

import io

import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.training import TrainingDatasetDocument, TrainingSettings
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
