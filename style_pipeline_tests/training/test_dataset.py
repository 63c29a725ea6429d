"""Training folder builder: buckets, layout, manifest hashes, determinism, bad inputs."""

from __future__ import annotations

import hashlib
import json

import pytest

from style_pipeline.contracts.training import DatasetBuildConfig
from style_pipeline.storage.store import Store
from style_pipeline.training.buckets import make_buckets, resize_crop_box, select_bucket
from style_pipeline.training.dataset import (
    DatasetItem,
    build_training_dataset,
    clean_caption,
    download_dataset,
    read_manifest,
    safe_stem,
)
from style_pipeline_tests.training.factories import write_images

PART = "2026-02-03"


def test_buckets_512_are_kohya_grid():
    buckets = make_buckets(512)
    assert (512, 512) in buckets and (640, 384) in buckets and (384, 640) in buckets
    assert all(w % 64 == 0 and h % 64 == 0 for w, h in buckets)
    assert all(w * h <= 512 * 512 and 256 <= min(w, h) and max(w, h) <= 1024 for w, h in buckets)
    assert buckets == sorted(buckets)


@pytest.mark.parametrize(
    ("size", "bucket"),
    [
        ((1920, 1080), (640, 384)),
        ((1080, 1920), (384, 640)),
        ((500, 500), (512, 512)),
        ((4000, 1000), (1024, 256)),
        ((800, 600), (576, 448)),
    ],
)
def test_select_bucket(size, bucket):
    assert select_bucket(*size, make_buckets(512)) == bucket


@pytest.mark.parametrize("bad", [(0, 10), (10, -1)])
def test_select_bucket_rejects_empty_sizes(bad):
    with pytest.raises(ValueError):
        select_bucket(*bad, make_buckets(512))


@pytest.mark.parametrize(
    ("size", "bucket", "expected"),
    [
        ((100, 50), (64, 64), ((128, 64), (32, 0, 96, 64))),
        ((64, 64), (64, 64), ((64, 64), (0, 0, 64, 64))),
    ],
)
def test_resize_crop_box(size, bucket, expected):
    assert resize_crop_box(*size, bucket) == expected


@pytest.mark.parametrize(
    ("frame_id", "stem"),
    [("abc123", "abc123"), ("media/0001 #2", "media_0001_2"), ("../x", "x"), ("é-ok", "ok")],
)
def test_safe_stem(frame_id, stem):
    assert safe_stem(frame_id) == stem


@pytest.mark.parametrize(("raw", "clean"), [("  a\n b\tc ", "a b c"), ("", "")])
def test_clean_caption(raw, clean):
    assert clean_caption(raw) == clean


def _items(tmp_path):
    paths = write_images(tmp_path / "src", [(96, 64), (64, 64), (64, 96)])
    return [(str(p), f"sks  style {i}\n", f"f{i}") for i, p in enumerate(paths)]


def test_layout_manifest_and_hashes(tmp_path):
    store = Store(tmp_path / "store")
    config = DatasetBuildConfig(resolution=64, bucket_step=16)
    result = build_training_dataset(list(reversed(_items(tmp_path))), store, PART, config)
    prefix = f"training_dataset/{PART}"
    assert result.prefix == prefix
    images = store.list(f"{prefix}/1_style")
    assert images == [
        f"{prefix}/1_style/{n}"
        for n in ("f0.jpg", "f0.txt", "f1.png", "f1.txt", "f2.jpg", "f2.txt")
    ]
    assert store.read_bytes(f"{prefix}/1_style/f0.txt") == b"sks style 0\n"
    rows = [json.loads(line) for line in store.read_bytes(f"{prefix}/metadata.jsonl").splitlines()]
    assert [r["file_name"] for r in rows] == ["1_style/f0.jpg", "1_style/f1.png", "1_style/f2.jpg"]
    assert rows[0]["text"] == "sks style 0"
    assert (rows[0]["bucket_width"], rows[0]["bucket_height"]) == (80, 48)
    assert (rows[2]["bucket_width"], rows[2]["bucket_height"]) == (48, 80)
    manifest = read_manifest(store, PART)
    assert manifest["count"] == 3 and manifest["buckets"] == {"48x80": 1, "64x64": 1, "80x48": 1}
    for entry in manifest["files"]:
        data = store.read_bytes(f"{prefix}/{entry['path']}")
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and len(data) == entry["bytes"]
    assert len(manifest["files"]) == 7  # 3 images, 3 captions, metadata.jsonl


def test_same_inputs_same_dataset_hash(tmp_path):
    items = _items(tmp_path)
    first = build_training_dataset(items, Store(tmp_path / "a"), PART)
    second = build_training_dataset(items[::-1], Store(tmp_path / "b"), PART)
    assert first.dataset_hash == second.dataset_hash
    assert (tmp_path / "a" / "training_dataset" / PART / "manifest.json").read_bytes() == (
        tmp_path / "b" / "training_dataset" / PART / "manifest.json"
    ).read_bytes()
    changed = [(items[0][0], "another caption", items[0][2]), *items[1:]]
    assert (
        build_training_dataset(changed, Store(tmp_path / "c"), PART).dataset_hash
        != first.dataset_hash
    )


def test_store_keys_memory_root_and_bad_items(tmp_path):
    store = Store(f"memory://sp-{tmp_path.name}")
    items = _items(tmp_path)
    store.put_file(items[0][0], "frames/x/one.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    (tmp_path / "pic.gif").write_bytes(b"GIF89a\x01\x00\x01\x00\x00\x00\x00;")
    result = build_training_dataset(
        [
            DatasetItem("frames/x/one.jpg", "from the store", "k1"),
            DatasetItem(str(tmp_path / "broken.jpg"), "broken", "k2"),
            DatasetItem(items[1][0], "   ", "k3"),
            DatasetItem(str(tmp_path / "missing.jpg"), "missing", "k4"),
        ],
        store,
        PART,
    )
    assert result.manifest["count"] == 1
    reasons = {s["frame_id"]: s["reason"] for s in result.skipped}
    assert reasons["k3"] == "empty_caption"
    assert reasons["k2"].startswith("bad_image") and reasons["k4"].startswith("bad_image")
    assert store.exists(f"training_dataset/{PART}/1_style/k1.jpg")


def test_refuses_duplicates_collisions_and_empty(tmp_path):
    store = Store(tmp_path / "s")
    path = _items(tmp_path)[0][0]
    with pytest.raises(ValueError, match="duplicate"):
        build_training_dataset([(path, "a", "x"), (path, "b", "x")], store, PART)
    with pytest.raises(ValueError, match="collide"):
        build_training_dataset([(path, "a", "a b"), (path, "b", "a/b")], store, PART)
    with pytest.raises(ValueError, match="no usable"):
        build_training_dataset([(path, "", "x")], store, PART)


def test_download_checks_sha(tmp_path):
    store = Store(tmp_path / "s")
    build_training_dataset(_items(tmp_path), store, PART)
    local = download_dataset(store, PART, tmp_path / "local")
    assert (local / "1_style" / "f1.png").is_file() and (local / "manifest.json").is_file()
    store.put_bytes(b"tampered\n", f"training_dataset/{PART}/1_style/f1.txt")
    with pytest.raises(ValueError, match="sha256"):
        download_dataset(store, PART, tmp_path / "again")


def test_hf_imagefolder_reads_the_folder(tmp_path):
    """The diffusers LoRA script loads ``imagefolder`` with ``data_files=<dir>/**``."""
    datasets = pytest.importorskip("datasets")
    store = Store(tmp_path / "s")
    build_training_dataset(_items(tmp_path), store, PART)
    folder = tmp_path / "s" / "training_dataset" / PART
    loaded = datasets.load_dataset(
        "imagefolder", data_files={"train": str(folder / "**")}, cache_dir=str(tmp_path / "hf")
    )["train"]
    assert loaded.num_rows == 3
    assert loaded.column_names[:2] == ["image", "text"], loaded.column_names
    assert sorted(loaded["text"]) == ["sks style 0", "sks style 1", "sks style 2"]


def test_trainer_reads_the_folder_into_bucketed_batches(tmp_path):
    import torch

    from style_pipeline.training import data

    store = Store(tmp_path / "s")
    sizes = [(96, 64), (64, 64), (64, 96), (100, 64), (64, 64)]
    paths = write_images(tmp_path / "src", sizes)
    items = [(str(p), f"caption {i}", f"g{i}") for i, p in enumerate(paths)]
    build_training_dataset(items, store, PART, DatasetBuildConfig(resolution=64, bucket_step=16))
    folder = tmp_path / "s" / "training_dataset" / PART
    records = data.read_training_folder(folder)
    assert [(r.width, r.height) for r in records] == sizes
    step = data.dataset_bucket_step(folder)
    buckets = data.assign_buckets(records, 64, use_buckets=True, step=step)
    assert buckets == [(80, 48), (64, 64), (48, 80), (80, 48), (64, 64)]
    assert data.assign_buckets(records, 64, use_buckets=False) == [(64, 64)] * 5
    batches = data.epoch_batches(buckets, 2, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    assert all(len({buckets[i] for i in b}) == 1 for b in batches)
    assert data.batches_per_epoch(buckets, 2) == len(batches) == 3
    again = data.epoch_batches(buckets, 2, torch.Generator().manual_seed(0))
    assert again == batches
    example = data.load_example(records[0], buckets[0], False, True, torch.Generator())
    assert example.pixel_values.shape == (3, 48, 80)
    assert -1.0 <= float(example.pixel_values.min()) <= float(example.pixel_values.max()) <= 1.0
    assert example.original_size == (64, 96)


def test_trainer_reads_a_plain_imagefolder(tmp_path):
    from style_pipeline.training import data

    paths = write_images(tmp_path, [(80, 64)])
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": paths[0].name, "text": "x"}))
    (record,) = data.read_training_folder(tmp_path)
    assert (record.width, record.height, record.caption) == (80, 64, "x")
    assert data.dataset_bucket_step(tmp_path) == 64
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "gone.png", "text": "x"}))
    with pytest.raises(FileNotFoundError, match="gone.png"):
        data.read_training_folder(tmp_path)
