"""Roles: affinities from rubric weights, softmax probabilities, quota-bound assignment."""

from __future__ import annotations

import numpy as np
import pytest

from style_pipeline.contracts.themes import Role, Rubric
from style_pipeline.curation.roles import (
    EXTRA,
    assign_roles,
    role_affinities,
    role_counts,
    role_probabilities,
)

ZERO = dict(q_tech=0, aesthetic=0, vibe=0, typography=0, composition=0)
ROLES = [
    Role(name="opener", quota=1, affinity=Rubric(**{**ZERO, "typography": 1})),
    Role(name="anchor", quota=2, affinity=Rubric(**{**ZERO, "vibe": 1})),
    Role(name="body", quota=3, affinity=Rubric(**{**ZERO, "q_tech": 1, "aesthetic": 1})),
]
# columns: q_tech, aesthetic, vibe, typography, composition
SCORES = np.array(
    [
        [0.5, 0.5, 0.2, 0.9, 0.5],  # room for a headline: an opener
        [0.5, 0.5, 0.9, 0.1, 0.5],  # on theme: an anchor
        [0.9, 0.9, 0.1, 0.1, 0.5],  # technically strong: body
        [0.6, 0.6, 0.8, 0.2, 0.5],
    ]
)


def test_affinities_are_weighted_means():
    aff = role_affinities(SCORES, ROLES)
    assert aff.shape == (4, 3)
    assert aff[0, 0] == pytest.approx(0.9) and aff[2, 2] == pytest.approx(0.9)
    with pytest.raises(ValueError, match="all zero"):
        role_affinities(SCORES, [Role(name="x", quota=1, affinity=Rubric(**ZERO))])
    with pytest.raises(ValueError, match=r"\(n, 5\)"):
        role_affinities(SCORES[:, :3], ROLES)


@pytest.mark.parametrize("temperature", [0.01, 0.05, 1.0])
def test_probabilities_sum_to_one_and_follow_affinity(temperature):
    p = role_probabilities(SCORES, ROLES, temperature)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert list(p.argmax(axis=1)[:3]) == [0, 1, 2]
    if temperature < 0.1:
        assert p[0, 0] > 0.9  # sharp at low temperature


def test_assignment_honours_quotas_and_prefers_heroes():
    p = role_probabilities(SCORES, ROLES)
    assert assign_roles([0, 1, 2, 3], p, ROLES) == {
        0: "opener", 1: "anchor", 3: "anchor", 2: "body"
    }  # fmt: skip
    hero_first = assign_roles([0, 1, 2, 3], p, ROLES, preference=np.array([0, 0, 2, 0]))
    assert hero_first[2] == "opener"  # the hero takes the scarcest role
    one_role = [Role(name="opener", quota=1)]
    over = assign_roles([0, 1], p[:, :1], one_role)
    assert over == {0: "opener", 1: EXTRA}
    assert role_counts(over, one_role) == {"opener": 1, EXTRA: 1}
    with pytest.raises(ValueError, match="preference"):
        assign_roles([0], p, ROLES, preference=np.zeros((4, 2)))
