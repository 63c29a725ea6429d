"""The characters stage on real faces: a reference character's views are matched, another
person's views form unknown_0 with a crop to name it by, faceless frames get no row."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import polars as pl
import pytest
from PIL import Image

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.stages.characters import characters_partition, empty_characters_table
from style_pipeline.stages.faces import find_partition_faces
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.curation.character_photos import (
    eileen,
    grace_hopper,
    reference_folder,
    views,
)

DAY = "2026-01-05"
SETTINGS = CharacterSettings(workers=1)


def store_frames(store: Store, images: dict[str, np.ndarray]) -> pl.DataFrame:
    """Frame JPEGs under the frames stage's keys and the ``frames`` columns faces reads."""
    rows = []
    for frame_id, image in images.items():
        out = io.BytesIO()
        Image.fromarray(image).save(out, format="JPEG", quality=92)
        key = store.put_bytes(out.getvalue(), layout.frame_key(DAY, frame_id))
        rows.append((frame_id, key, hashlib.sha256(out.getvalue()).hexdigest()))
    return pl.DataFrame(rows, schema=["frame_id", "path", "sha256"], orient="row")


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("characters")
    store = Store(root / "storage")
    images = {f"g{i}": v for i, v in enumerate(views(grace_hopper(), 3, seed=21))}
    images |= {f"e{i}": v for i, v in enumerate(views(eileen(), 4, seed=22, strength=0.5))}
    images["sky"] = np.full((240, 320, 3), 120, np.uint8)
    frames = store_frames(store, images)
    faces, _ = find_partition_faces(frames, store, SETTINGS, workers=1)
    refs = root / "refs"
    reference_folder(refs, "grace", grace_hopper(), "trigger_word: grace_sps\n")
    (refs / "grace" / "broken.png").write_bytes(b"not a png")
    return store, frames, faces, refs


def test_characters_are_matched_and_strangers_grouped(day):
    store, frames, faces, refs = day
    table, facts = characters_partition(faces, frames, store, SETTINGS, refs, DAY)
    assert table.height == faces.height and table.columns == empty_characters_table().columns
    first = table.filter(pl.col("face_index") == 0)
    by_frame = dict(zip(first["frame_id"], first["label"], strict=True))
    assert [by_frame[f"g{i}"] for i in range(3)] == ["grace"] * 3
    assert {by_frame[f"e{i}"] for i in range(4)} <= {"unknown_0", None}
    assert sum(by_frame[f"e{i}"] == "unknown_0" for i in range(4)) >= 3
    assert "sky" not in by_frame  # no face, no row
    grace = table.filter(pl.col("label") == "grace")
    assert grace["matched"].all() and (grace["confidence"] > 0.9).all()
    assert grace["distance"].max() < 0.45 and grace["margin"].is_null().all()  # one character
    strangers = table.filter(pl.col("label") == "unknown_0")
    assert not strangers["matched"].any() and strangers["distance"].is_null().all()
    assert facts.matched == {"grace": 3} and facts.references == {"grace": 1}
    [group] = facts.unknown
    assert group.label == "unknown_0" and group.frame_id.startswith("e")
    assert group.crop_key == layout.unknown_group_key(DAY, "unknown_0")
    with Image.open(io.BytesIO(store.read_bytes(group.crop_key))) as crop:
        assert max(crop.size) <= 256
    assert facts.sheet_key and store.exists(facts.sheet_key)
    assert [(r.file.rsplit("/", 1)[1], r.reason) for r in facts.rejected] == [
        ("broken.png", "unreadable")
    ]


def test_a_rerun_gives_the_same_table_and_forgets_stale_crops(day, tmp_path):
    store, frames, faces, refs = day
    stale = store.put_bytes(b"old", layout.unknown_group_key(DAY, "unknown_7"))
    first, _ = characters_partition(faces, frames, store, SETTINGS, refs, DAY)
    again, _ = characters_partition(faces.reverse(), frames, store, SETTINGS, refs, DAY)
    assert again.reverse().equals(first)
    assert not store.exists(stale)


def test_no_references_everyone_is_unknown(day, tmp_path):
    store, frames, faces, _ = day
    table, facts = characters_partition(faces, frames, store, SETTINGS, tmp_path / "none", DAY)
    assert facts.matched == {} and not table["matched"].any()
    assert [g.label for g in facts.unknown] == ["unknown_0", "unknown_1"][: len(facts.unknown)]
    assert facts.unknown[0].faces >= 3 and "references" in facts.timings


def test_no_faces_no_rows(tmp_path):
    store = Store(tmp_path / "storage")
    refs = tmp_path / "refs"
    reference_folder(refs, "grace", grace_hopper())
    faces = find_partition_faces(
        store_frames(store, {"sky": np.zeros((64, 64, 3), np.uint8)}), store, SETTINGS, workers=1
    )[0]
    table, facts = characters_partition(faces, None, store, SETTINGS, refs, DAY)
    assert table.height == 0 and table.schema == empty_characters_table().schema
    assert facts.matched == {"grace": 0} and facts.unknown == () and facts.sheet_key is None


def test_faces_without_a_descriptor_get_no_label(tmp_path):
    from style_pipeline.contracts.characters import CharacterSpec
    from style_pipeline.curation.character_refs import References
    from style_pipeline.stages.characters import label_faces

    faces = pl.DataFrame(
        {
            "frame_id": ["a", "a", "b"],
            "face_index": [0, 1, 0],
            "x0": [0, 0, 0],
            "y0": [0, 0, 0],
            "x1": [9, 9, 9],
            "y1": [9, 9, 9],
            "embedding": [[0.0, 0.1], None, [5.0, 5.0]],
        }  # fmt: skip
    )
    refs = References({"x": CharacterSpec(name="x")}, {"x": np.zeros((1, 2), np.float32)}, {})
    table, facts = label_faces(faces, refs, SETTINGS, Store(tmp_path), DAY)
    assert table["label"].to_list() == ["x", None, None]
    assert table["confidence"].to_list()[1:] == [0.0, 0.0]
    assert facts.embedded == 2 and facts.unlabelled == 2 and facts.matched == {"x": 1}
