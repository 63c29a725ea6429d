"""Reference photos: one descriptor per usable photo, every other photo rejected by name."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.curation.character_refs import load_references
from style_pipeline.demo.faces import face_crop, write_jpeg
from style_pipeline.models.faces import load_face_models
from style_pipeline_tests.curation.character_photos import eileen, grace_hopper, reference_folder

SETTINGS = CharacterSettings()


@pytest.fixture(scope="module")
def models():
    return load_face_models(SETTINGS)


def test_one_descriptor_per_usable_photo(tmp_path, models):
    refs_dir = tmp_path / "characters"
    reference_folder(refs_dir, "grace", grace_hopper(), "trigger_word: grace_sps\n")
    reference_folder(refs_dir, "eileen", eileen())
    refs = load_references(refs_dir, models, SETTINGS)
    assert sorted(refs.embeddings) == ["eileen", "grace"] and refs.rejected == ()
    assert refs.embeddings["grace"].shape == (1, 128)
    assert refs.embeddings["grace"].dtype == np.float32
    assert refs.specs["grace"].trigger == "grace_sps"
    apart = np.linalg.norm(refs.embeddings["grace"][0] - refs.embeddings["eileen"][0])
    assert apart > SETTINGS.match_threshold  # two people


def test_bad_photos_are_rejected_by_name(tmp_path, models):
    refs_dir = tmp_path / "characters"
    folder = reference_folder(refs_dir, "grace", grace_hopper())
    (folder / "broken.jpg").write_bytes(b"no image at all")
    Image.new("RGB", (320, 240), (90, 120, 150)).save(folder / "sky.png")
    small = Image.fromarray(np.ascontiguousarray(face_crop(grace_hopper())))
    small.resize((small.width // 6, small.height // 6)).save(folder / "tiny.webp")
    (folder / "notes.txt").write_text("not a photo: ignored")
    refs = load_references(refs_dir, models, SETTINGS)
    reasons = {r.file.rsplit("/", 1)[1]: r.reason for r in refs.rejected}
    assert reasons["broken.jpg"] == "unreadable" and reasons["sky.png"] == "no_face"
    assert reasons["tiny.webp"] == "too_small"  # a 37 px face: found, not embedded
    assert refs.files["grace"] == (str(folder / "face.jpg"),)


def _pair(grace: np.ndarray, other: np.ndarray) -> np.ndarray:
    h = max(grace.shape[0], other.shape[0])
    pad = [np.pad(im, ((0, h - im.shape[0]), (0, 0), (0, 0))) for im in (grace, other)]
    return np.concatenate(pad, axis=1)


def test_several_faces_keep_the_characters_face_or_are_rejected(tmp_path, models):
    refs_dir = tmp_path / "characters"
    pair = _pair(face_crop(grace_hopper()), face_crop(eileen()))
    write_jpeg(pair, refs_dir / "alone" / "pair.jpg")
    folder = reference_folder(refs_dir, "grace", grace_hopper())
    write_jpeg(pair, folder / "pair.jpg")
    refs = load_references(refs_dir, models, SETTINGS)
    [rejected] = refs.rejected
    assert rejected.reason == "several_faces" and rejected.file.endswith("alone/pair.jpg")
    assert refs.unusable == ["alone"] and "alone" in refs.notes[0]
    grace = refs.embeddings["grace"]
    assert grace.shape == (2, 128) and np.linalg.norm(grace[0] - grace[1]) < 0.4


def test_no_references_dir_and_no_embedder(tmp_path, models):
    empty = load_references(tmp_path / "nope", models, SETTINGS)
    assert empty.specs == {} and empty.embeddings == {}
    reference_folder(tmp_path / "characters", "grace", grace_hopper())
    opencv = load_face_models(CharacterSettings(detector="opencv"))
    refs = load_references(tmp_path / "characters", opencv, SETTINGS)
    assert refs.embeddings == {} and "cannot be matched" in refs.notes[0]


def test_reference_faces_are_cached_by_content(tmp_path, models):
    from style_pipeline.curation.face_cache import FaceCache
    from style_pipeline.storage.store import Store

    refs_dir = tmp_path / "characters"
    reference_folder(refs_dir, "grace", grace_hopper())
    cache = FaceCache(Store(tmp_path / "store"), models, SETTINGS)
    first = load_references(refs_dir, models, SETTINGS, cache=cache)
    again = load_references(refs_dir, models, SETTINGS, cache=cache)
    assert (first.n_cached, again.n_cached) == (0, 1)
    assert np.array_equal(first.embeddings["grace"], again.embeddings["grace"])
