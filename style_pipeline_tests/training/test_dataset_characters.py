"""Per-character training folders: kohya ``<repeats>_<name>`` concepts, balancing repeats."""

from __future__ import annotations

import json

import pytest

from style_pipeline.contracts.training import DatasetBuildConfig
from style_pipeline.storage.store import Store
from style_pipeline.training.concepts import Concept, balanced_repeats, plan_concepts
from style_pipeline.training.dataset import DatasetItem, build_training_dataset, read_manifest
from style_pipeline_tests.training.factories import write_images

PART = "2026-02-03"
PER_CHARACTER = DatasetBuildConfig(resolution=64, bucket_step=16, layout="per_character")

# 1 image of ann (one with bob too), 4 of bob, 2 naming no one
NAMED = {
    "f0": ("ann", "bob"),
    "f1": ("bob",),
    "f2": ("bob",),
    "f3": ("bob",),
    "f4": ("bob",),
    "f5": (),
    "f6": (),
}


@pytest.mark.parametrize(
    ("count", "most", "base", "cap", "repeats"),
    [(4, 4, 1, 10, 1), (1, 4, 1, 10, 4), (3, 4, 1, 10, 1), (2, 5, 1, 10, 3), (1, 40, 1, 10, 10),
     (1, 4, 2, 10, 8), (1, 40, 2, 3, 6)],
)  # fmt: skip
def test_balanced_repeats(count, most, base, cap, repeats):
    assert balanced_repeats(count, most, base, cap) == repeats


def test_plan_concepts_files_each_image_under_its_first_character():
    plan = plan_concepts(NAMED.items(), PER_CHARACTER)
    assert plan["f0"] == Concept("ann", 4, character=True)
    assert {plan[f].folder for f in ("f1", "f2", "f3", "f4")} == {"1_bob"}
    assert plan["f5"] == plan["f6"] == Concept("style", 1, character=False)
    flat = plan_concepts(NAMED.items(), DatasetBuildConfig())
    assert {c.folder for c in flat.values()} == {"1_style"}


@pytest.mark.parametrize(("name", "match"), [("style", "concept's name"), ("a b", "folder")])
def test_plan_concepts_refuses_bad_character_names(name, match):
    with pytest.raises(ValueError, match=match):
        plan_concepts([("f0", (name,))], PER_CHARACTER)


def _items(tmp_path) -> list[DatasetItem]:
    paths = write_images(tmp_path / "src", [(64, 64)] * len(NAMED))
    return [
        DatasetItem(str(p), f"sps_style, {', '.join(names)}, frame {f}", f, names)
        for p, (f, names) in zip(paths, NAMED.items(), strict=True)
    ]


def test_per_character_folders_metadata_and_manifest(tmp_path):
    store = Store(tmp_path / "s")
    result = build_training_dataset(_items(tmp_path), store, PART, PER_CHARACTER)
    prefix = f"training_dataset/{PART}"
    folder = tmp_path / "s" / prefix
    assert sorted(p.name for p in folder.iterdir()) == [
        "1_bob", "1_style", "4_ann", "manifest.json", "metadata.jsonl",
    ]  # fmt: skip
    assert sorted(p.name for p in (folder / "4_ann").iterdir()) == ["f0.jpg", "f0.txt"]
    assert len(list((folder / "1_bob").iterdir())) == 8
    assert sorted(p.name for p in (folder / "1_style").iterdir())[0] == "f5.png"
    assert store.read_bytes(f"{prefix}/4_ann/f0.txt") == b"sps_style, ann, bob, frame f0\n"
    rows = [json.loads(line) for line in store.read_bytes(f"{prefix}/metadata.jsonl").splitlines()]
    assert [(r["file_name"], r["concept"], r["repeats"]) for r in rows] == [
        ("4_ann/f0.jpg", "ann", 4),
        ("1_bob/f1.png", "bob", 1),
        ("1_bob/f2.jpg", "bob", 1),
        ("1_bob/f3.png", "bob", 1),
        ("1_bob/f4.jpg", "bob", 1),
        ("1_style/f5.png", "style", 1),
        ("1_style/f6.jpg", "style", 1),
    ]
    manifest = read_manifest(store, PART)
    assert manifest["layout"] == "per_character"
    assert manifest["concepts"] == {"1_bob": 4, "1_style": 2, "4_ann": 1}
    assert manifest["config"]["layout"] == "per_character"
    assert result.manifest["count"] == 7


def test_layout_changes_the_dataset_hash_and_flat_ignores_characters(tmp_path):
    items = _items(tmp_path)
    flat_config = DatasetBuildConfig(resolution=64, bucket_step=16)
    flat = build_training_dataset(items, Store(tmp_path / "a"), PART, flat_config)
    per = build_training_dataset(items, Store(tmp_path / "b"), PART, PER_CHARACTER)
    plain = [DatasetItem(i.source, i.caption, i.frame_id) for i in items]
    unnamed = build_training_dataset(plain, Store(tmp_path / "c"), PART, flat_config)
    assert flat.dataset_hash != per.dataset_hash
    assert flat.dataset_hash == unnamed.dataset_hash
    assert flat.manifest["concepts"] == {"1_style": 7}
    rows = (tmp_path / "a" / "training_dataset" / PART / "metadata.jsonl").read_text()
    assert "repeats" not in rows and "concept" not in rows  # flat rows as before


def test_our_trainer_repeats_per_character_rows(tmp_path):
    from style_pipeline.training import data

    store = Store(tmp_path / "s")
    build_training_dataset(_items(tmp_path), store, PART, PER_CHARACTER)
    records = data.read_training_folder(tmp_path / "s" / "training_dataset" / PART)
    names = [r.image.parent.name + "/" + r.image.name for r in records]
    assert names[:4] == ["4_ann/f0.jpg"] * 4 and len(records) == 4 + 4 + 2
    assert names.count("1_bob/f1.png") == 1


def test_trainer_refuses_zero_repeats(tmp_path):
    from style_pipeline.training import data

    paths = write_images(tmp_path, [(32, 32)])
    row = {"file_name": paths[0].name, "text": "x", "repeats": 0}
    (tmp_path / "metadata.jsonl").write_text(json.dumps(row))
    with pytest.raises(ValueError, match="repeats"):
        data.read_training_folder(tmp_path)


def test_hf_imagefolder_reads_the_per_character_folder(tmp_path):
    """One metadata.jsonl at the top lists every image once; subfolders add no label."""
    datasets = pytest.importorskip("datasets")
    store = Store(tmp_path / "s")
    build_training_dataset(_items(tmp_path), store, PART, PER_CHARACTER)
    folder = tmp_path / "s" / "training_dataset" / PART
    loaded = datasets.load_dataset(
        "imagefolder", data_files={"train": str(folder / "**")}, cache_dir=str(tmp_path / "hf")
    )["train"]
    assert loaded.num_rows == 7
    assert loaded.column_names[:2] == ["image", "text"], loaded.column_names
    assert "label" not in loaded.column_names
    assert sorted(loaded["concept"]) == ["ann", "bob", "bob", "bob", "bob", "style", "style"]
