"""The demo's faces: augmented views keep the face in their box, the demo character's
references are usable and its photos in the drop are matched (real face models)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.curation.character_match import match_faces
from style_pipeline.curation.character_refs import load_references, load_specs
from style_pipeline.curation.face_embeddings import find_faces, read_rgb
from style_pipeline.demo.faces import DEMO_CHARACTER, DEMO_TRIGGER, augment, grace_hopper
from style_pipeline.demo.samples import populate_drop
from style_pipeline.models.faces import load_face_models

SETTINGS = CharacterSettings()


@pytest.fixture(scope="module")
def models():
    return load_face_models(SETTINGS)


def test_augmented_views_say_where_the_face_is(models):
    rng = np.random.default_rng(0)
    for _ in range(3):
        view = augment(grace_hopper(), rng)
        [face] = find_faces(view.image, models, SETTINGS)
        assert view.holds(face.box)
        assert not view.holds((0, 0, 4, 4))


def test_drop_with_faces_and_the_demo_character(tmp_path, models):
    refs = tmp_path / "characters"
    samples = populate_drop(
        tmp_path / "drop", video_seconds=1.0, width=128, height=72, n_photos=1,
        face_photos=2, characters_dir=refs,
    )  # fmt: skip
    assert samples.character == refs / DEMO_CHARACTER
    # the astronaut needs scikit-image (a dev dependency)
    assert [p.name for p in samples.faces] == [
        "face_grace_00.jpg", "face_grace_01.jpg", "face_eileen_00.jpg", "face_eileen_01.jpg"
    ]  # fmt: skip
    assert load_specs(refs)[DEMO_CHARACTER].trigger == DEMO_TRIGGER

    references = load_references(refs, models, SETTINGS)
    assert references.embeddings[DEMO_CHARACTER].shape == (2, 128) and not references.rejected
    found = [find_faces(read_rgb(str(p)), models, SETTINGS) for p in samples.faces]
    labels = match_faces(
        np.stack([faces[0].embedding for faces in found]),
        references.embeddings,
        SETTINGS.match_threshold,
        SETTINGS.match_margin,
    ).label
    assert [lab == DEMO_CHARACTER for lab in labels] == ["grace" in p.name for p in samples.faces]


def test_a_users_character_folder_is_never_overwritten(tmp_path):
    mine = tmp_path / "characters" / DEMO_CHARACTER
    mine.mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(mine / "mine.png")
    samples = populate_drop(
        tmp_path / "drop", video_seconds=1.0, width=128, height=72, n_photos=1,
        characters_dir=tmp_path / "characters",
    )  # fmt: skip
    assert samples.character is None and samples.faces == []
    assert sorted(p.name for p in mine.iterdir()) == ["mine.png"]
