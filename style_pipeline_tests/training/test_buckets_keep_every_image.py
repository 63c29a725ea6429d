"""No image is lost to bucketing: short batches are kept, the manifest lists every image."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch

from style_pipeline.contracts.training import DatasetBuildConfig
from style_pipeline.storage.store import Store
from style_pipeline.training import data
from style_pipeline.training.dataset import DatasetItem, build_training_dataset, download_dataset
from style_pipeline.training.feed import BatchFeed
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.train_loop import epoch_jobs
from style_pipeline_tests.training.conftest import PARTITION
from style_pipeline_tests.training.factories import write_images


@pytest.mark.parametrize(
    ("counts", "batch_size"),
    [
        ({(64, 64): 1}, 4),  # a bucket of one image, batches of four
        ({(64, 64): 5, (96, 48): 1, (48, 96): 3}, 4),
        ({(64, 64): 7, (96, 48): 2}, 3),
        ({(64, 64): 2}, 1),
    ],
)
def test_every_image_is_in_exactly_one_batch_per_epoch(counts, batch_size):
    buckets = [bucket for bucket, n in counts.items() for _ in range(n)]
    generator = torch.Generator().manual_seed(0)
    for _epoch in range(3):
        batches = data.epoch_batches(buckets, batch_size, generator)
        seen = [i for batch in batches for i in batch]
        assert sorted(seen) == list(range(len(buckets)))
        assert all(len({buckets[i] for i in batch}) == 1 for batch in batches)
        assert all(1 <= len(batch) <= batch_size for batch in batches)
        assert len(batches) == data.batches_per_epoch(buckets, batch_size)


def test_a_lone_image_in_its_bucket_is_trained_every_epoch(tmp_path):
    """Four square images and one panorama (its own bucket), batches of four."""
    paths = write_images(tmp_path / "src", [(64, 64)] * 4 + [(192, 64)])
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(paths)]
    store = Store(tmp_path / "storage")
    config = DatasetBuildConfig(resolution=64, bucket_step=16)
    result = build_training_dataset(items, store, PARTITION, config)
    assert sum(result.manifest["buckets"].values()) == 5
    folder = download_dataset(store, PARTITION, tmp_path / "local")
    records = data.read_training_folder(folder)
    buckets = data.assign_buckets(records, 64, True, data.dataset_bucket_step(folder))
    assert len(set(buckets)) == 2
    feed = BatchFeed(records, buckets, 0, torch.device("cpu"))
    config = PRESETS["tiny"].model_copy(update={"train_batch_size": 4})
    generator = torch.Generator().manual_seed(0)
    for _epoch in range(2):
        jobs = epoch_jobs(feed, config, generator)
        assert sorted(len(job) for job in jobs) == [1, 4]
        assert sorted(i for job in jobs for i, _ in job) == [0, 1, 2, 3, 4]


def test_the_manifest_reports_every_image_and_its_bucket(tmp_path):
    sizes = [(64, 64), (96, 64), (64, 96), (64, 64), (200, 60)]
    paths = write_images(tmp_path / "src", sizes)
    items = [
        DatasetItem(str(p), f"sks style, alice, picture {i}", f"frame-{i}", ("alice",))
        if i < 2
        else DatasetItem(str(p), f"sks style, picture {i}", f"frame-{i}")
        for i, p in enumerate(paths)
    ]
    config = DatasetBuildConfig(
        resolution=64, bucket_step=16, layout="per_character", concept_repeats={"alice": 3}
    )
    result = build_training_dataset(items, Store(tmp_path / "s"), PARTITION, config)
    report = result.manifest["images"]
    assert [(r["file"], r["size"], r["repeats"], r["concept"]) for r in report] == [
        ("3_alice/frame-0.jpg", "64x64", 3, "alice"),
        ("3_alice/frame-1.png", "96x64", 3, "alice"),
        ("1_style/frame-2.jpg", "64x96", 1, "style"),
        ("1_style/frame-3.png", "64x64", 1, "style"),
        ("1_style/frame-4.jpg", "200x60", 1, "style"),
    ]
    assert Counter(r["bucket"] for r in report) == Counter(result.manifest["buckets"])
    examples = Counter()
    for r in report:
        examples[r["bucket"]] += r["repeats"]
    assert result.manifest["bucket_examples"] == dict(sorted(examples.items()))
    assert sum(result.manifest["bucket_examples"].values()) == 3 + 3 + 1 + 1 + 1


def test_concept_repeats_in_a_flat_folder_reach_the_trainer(tmp_path):
    paths = write_images(tmp_path / "src", [(64, 64), (96, 64)])
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(paths)]
    store = Store(tmp_path / "s")
    config = DatasetBuildConfig(resolution=64, concept_repeats={"style": 2})
    build_training_dataset(items, store, PARTITION, config)
    folder = download_dataset(store, PARTITION, tmp_path / "local")
    rows = [json.loads(line) for line in (folder / "metadata.jsonl").read_text().splitlines()]
    assert [r["file_name"] for r in rows] == ["2_style/frame-0.jpg", "2_style/frame-1.png"]
    assert all(r["repeats"] == 2 and r["concept"] == "style" for r in rows)
    assert len(data.read_training_folder(folder)) == 4


def test_flat_rows_of_one_repeat_are_unchanged(tmp_path):
    paths = write_images(tmp_path / "src", [(64, 64)])
    result = build_training_dataset(
        [(str(paths[0]), "sks style", "f")],
        Store(tmp_path / "s"),
        PARTITION,
        DatasetBuildConfig(resolution=64),
    )
    meta = Store(tmp_path / "s").read_bytes(f"training_dataset/{PARTITION}/metadata.jsonl")
    assert set(json.loads(meta)) == {
        "file_name",
        "text",
        "frame_id",
        "width",
        "height",
        "bucket_width",
        "bucket_height",
    }
    assert result.manifest["regularization"] == {"count": 0}


def test_concept_repeats_must_be_positive():
    from style_pipeline.training.concepts import plan_concepts

    with pytest.raises(ValueError, match="at least 1"):
        plan_concepts([("a", ())], DatasetBuildConfig(concept_repeats={"style": 0}))
