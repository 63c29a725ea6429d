"""Matching faces to characters and grouping the rest: the formula on small vectors, then
real faces (two people, augmented views)."""

from __future__ import annotations

import numpy as np
import pytest

from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.curation.character_match import (
    character_distances,
    confidence,
    group_unknown,
    match_faces,
)
from style_pipeline.curation.face_embeddings import find_faces
from style_pipeline.demo.faces import face_crop
from style_pipeline.models.faces import load_face_models
from style_pipeline_tests.curation.character_photos import eileen, grace_hopper, views

T, M = 0.6, 0.05


def test_distance_is_the_nearer_of_nearest_reference_and_centroid():
    refs = {"a": np.array([[0.0, 0.0], [2.0, 0.0]]), "b": np.array([[0.0, 5.0]])}
    names, d = character_distances(np.array([[1.0, 0.0], [2.0, 0.1], [0.0, 4.0]]), refs)
    assert names == ["a", "b"]
    np.testing.assert_allclose(d[:, 0], [0.0, 0.1, 4.0])  # centroid (1, 0); (0, 0)
    np.testing.assert_allclose(d[:, 1], [np.hypot(1, 5), np.hypot(2, 4.9), 1.0])


@pytest.mark.parametrize(
    ("best", "margin", "expected"),
    [(0.6, np.inf, 0.5), (0.3, np.inf, 1.0), (0.9, np.inf, 0.0), (0.3, 0.05, 1 - np.exp(-1))],
)
def test_confidence_formula(best, margin, expected):
    assert confidence(np.array([best]), np.array([margin]), T)[0] == pytest.approx(
        expected, abs=0.01
    )


def test_threshold_and_margin_decide_a_match():
    refs = {"a": np.array([[0.0, 0.0]]), "b": np.array([[1.0, 0.0]])}
    x = np.array([[0.1, 0.0], [0.48, 0.0], [0.0, 0.7], [0.9, 0.0]])
    m = match_faces(x, refs, T, M)
    # close to a; between a and b (margin 0.04); too far from both; close to b
    assert m.label == ["a", None, None, "b"]
    assert m.confidence[0] > 0.95 and m.confidence[1] == 0 and m.confidence[2] == 0
    np.testing.assert_allclose(m.margin[[0, 3]], [0.8, 0.8])


def test_no_characters_no_faces():
    assert match_faces(np.zeros((2, 4)), {}, T, M).label == [None, None]
    assert match_faces(np.zeros((0, 4)), {"a": np.zeros((1, 4))}, T, M).label == []
    empty = group_unknown(np.zeros((0, 4)), 3, T)
    assert empty.n_groups == 0 and empty.group.shape == (0,)


def _blob(rng, centre, n, spread=0.05):
    return centre + rng.normal(0, spread, size=(n, len(centre)))


def test_unknown_groups_numbered_by_size_and_stable():
    rng = np.random.default_rng(0)
    small, large = _blob(rng, np.full(8, 0.0), 4), _blob(rng, np.full(8, 1.0), 7)
    x = np.concatenate([small, large, [np.full(8, -3.0)]])
    g = group_unknown(x, 3, T)
    assert g.n_groups == 2
    assert set(g.group[4:11]) == {0} and set(g.group[:4]) == {1} and g.group[11] == -1
    assert g.probability[11] == 0 and g.group[g.representative[0]] == 0
    again = group_unknown(x.copy(), 3, T)
    assert np.array_equal(g.group, again.group) and g.representative == again.representative
    assert group_unknown(x[:2], 3, T).n_groups == 0  # fewer faces than a group needs


def test_a_group_is_one_person():
    """HDBSCAN may take two far apart sets for one group; members past the threshold from
    its centroid are noise."""
    rng = np.random.default_rng(1)
    x = np.concatenate([_blob(rng, np.zeros(8), 3, 0.01), _blob(rng, np.full(8, 0.5), 3, 0.01)])
    g = group_unknown(x, 3, 0.2)
    assert g.n_groups <= 2 and all(
        np.linalg.norm(x[g.group == k] - x[g.group == k].mean(0), axis=1).max() <= 0.2
        for k in range(g.n_groups)
    )


# Real faces -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real():
    settings = CharacterSettings()
    models = load_face_models(settings)

    def largest(image):
        faces = find_faces(image, models, settings)
        assert faces and faces[0].embedding is not None
        return faces[0].embedding

    grace_ref = largest(face_crop(grace_hopper()))
    grace = np.stack([largest(v) for v in views(grace_hopper(), 5, seed=11)])
    other = np.stack([largest(v) for v in views(eileen(), 5, seed=12, strength=0.5)])
    return grace_ref, grace, other


def test_augmented_views_match_and_the_other_person_does_not(real):
    grace_ref, grace, other = real
    m = match_faces(np.concatenate([grace, other]), {"grace": grace_ref[None]}, T, M)
    assert m.label == ["grace"] * 5 + [None] * 5
    assert (m.confidence[:5] > 0.9).all() and (m.distance[:5] < 0.4).all()
    assert (m.distance[5:] > T).all()


def test_unknown_faces_of_one_person_form_unknown_0(real):
    _, grace, other = real
    g = group_unknown(np.concatenate([other, grace]), 3, T)
    assert g.n_groups == 2 and (g.group >= 0).sum() >= 8
    people = {
        int(np.bincount(g.group[s][g.group[s] >= 0]).argmax()) for s in (slice(0, 5), slice(5, 10))
    }
    assert people == {0, 1}  # one group each
