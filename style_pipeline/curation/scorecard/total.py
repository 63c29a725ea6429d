"""``total_prelim`` (the theme's rubric-weighted mean) and the theme's hard constraints.

Reason codes: ``low_q_tech`` (q_tech below ``constraints.q_tech_floor``),
``wrong_orientation`` (not the theme's orientation; square when the sides differ by at
most 2 %), ``too_many_people`` (more faces than ``constraints.max_people``).
"""

from __future__ import annotations

from collections.abc import Mapping

from style_pipeline.contracts.themes import SCORES, HardConstraints, Rubric

SQUARE_TOLERANCE = 0.02


def total_prelim(scores: Mapping[str, float], rubric: Rubric) -> float:
    weights = {name: getattr(rubric, name) for name in SCORES}
    return sum(weights[n] * scores[n] for n in SCORES) / rubric.total()


def orientation(width: int, height: int) -> str:
    if abs(width - height) <= SQUARE_TOLERANCE * max(width, height):
        return "square"
    return "landscape" if width > height else "portrait"


def constraint_reasons(
    q_tech: float, width: int, height: int, face_count: int | None, constraints: HardConstraints
) -> list[str]:
    """The reason codes of every hard constraint the frame fails (empty: it passes)."""
    reasons = []
    if q_tech < constraints.q_tech_floor:
        reasons.append("low_q_tech")
    if constraints.orientation != "any" and orientation(width, height) != constraints.orientation:
        reasons.append("wrong_orientation")
    if (
        constraints.max_people is not None
        and face_count is not None
        and face_count > constraints.max_people
    ):
        reasons.append("too_many_people")
    return reasons
