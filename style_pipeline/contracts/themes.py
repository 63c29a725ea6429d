"""Theme contracts: what a day's curation is scored, judged and balanced against.

A theme lives in ``data/themes/<name>.yaml`` and is selected by ``curation.theme``. Its
``theme_hash`` (sha256 of the canonical JSON) is recorded in every table and document that
used it, so a changed theme re-scores without re-embedding and nothing is judged twice
under two different rubrics.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import Field, model_validator

from style_pipeline.contracts.captioning import EndpointConfig
from style_pipeline.contracts.sections import Section

NAME = r"^[a-z][a-z0-9_]*$"
# Axes measured from the pixels and the upstream tables (no prompts needed); any other
# axis name in ``Theme.axes`` is a CLIP zero-shot axis over its values' prompts.
MEASURED_AXES = ("palette", "time_of_day", "people", "orientation")
SCORES = ("q_tech", "aesthetic", "vibe", "typography", "composition")


class Rubric(Section):
    """Weights of each score in ``total_prelim`` (and, per role, in the role's affinity)."""

    q_tech: float = Field(1.0, ge=0)
    aesthetic: float = Field(1.0, ge=0)
    vibe: float = Field(1.0, ge=0)
    typography: float = Field(0.0, ge=0)
    composition: float = Field(0.5, ge=0)

    def total(self) -> float:
        return self.q_tech + self.aesthetic + self.vibe + self.typography + self.composition


class Role(Section):
    """A slot of the final sequence (opener, anchor, body, closer ...) and how many."""

    name: str = Field(pattern=NAME)
    quota: int = Field(ge=0, description="frames wanted in this role per day")
    affinity: Rubric = Field(
        default_factory=Rubric, description="which scores make a frame fit this role"
    )


class HardConstraints(Section):
    """Frames failing these are dropped before ranking, each with its own reason code."""

    q_tech_floor: float = Field(0.25, ge=0, le=1, description="below: dropped, low_q_tech")
    orientation: Literal["any", "landscape", "portrait", "square"] = "any"
    max_people: int | None = Field(None, ge=0, description="more faces: dropped, too_many_people")


class JudgeSettings(Section):
    """Pairwise judging: who judges, how much may be spent, and the Elo parameters."""

    kind: Literal["heuristic", "endpoint"] = "heuristic"
    endpoint: EndpointConfig = EndpointConfig()
    prompt_version: str = Field("1", description="bump when the judging prompt changes")
    contenders_per_cluster: int = Field(4, ge=2, le=8)
    max_pairs_per_cluster: int = Field(6, ge=1)
    opener_finalists: int = Field(20, ge=2)
    max_pairs_per_day: int = Field(400, ge=0, description="budget across clusters + finalists")
    max_tokens_per_day: int = Field(400_000, ge=0, description="endpoint token budget")
    input_usd_per_1k_tokens: float = Field(0.0, ge=0, description="for the reported cost")
    output_usd_per_1k_tokens: float = Field(0.0, ge=0)
    elo_k: float = Field(32.0, gt=0)
    elo_start: float = 1500.0
    seed: int = 0


class AxisValue(Section):
    """One value of a zero-shot axis and the prompts that describe it."""

    value: str = Field(pattern=NAME)
    prompts: list[str] = Field(min_length=1)


class Theme(Section):
    """A brand's or a book's curation brief."""

    name: str = Field(pattern=NAME)
    version: str = Field(pattern=r"^\d+(\.\d+){0,2}$")
    description: str = ""
    vibe_prompts: list[str] = Field(min_length=1, description="what the set should feel like")
    anti_prompts: list[str] = Field(default_factory=list, description="what it should not")
    axes: dict[str, list[AxisValue]] = Field(
        default_factory=dict, description="zero-shot coverage axes: axis -> values with prompts"
    )
    axis_emphasis: dict[str, float] = Field(
        default_factory=dict, description="weight of each axis's coverage (missing: 1.0)"
    )
    rubric: Rubric = Rubric()
    roles: list[Role] = Field(min_length=1)
    constraints: HardConstraints = HardConstraints()
    judge: JudgeSettings = JudgeSettings()

    @model_validator(mode="after")
    def _consistent(self) -> Theme:
        roles = [r.name for r in self.roles]
        if len(set(roles)) != len(roles):
            raise ValueError(f"roles: duplicate role names in {roles}")
        for axis, values in self.axes.items():
            if axis in MEASURED_AXES:
                raise ValueError(f"axes.{axis}: {axis} is measured, it takes no prompts")
            if not values:
                raise ValueError(f"axes.{axis}: needs at least one value")
            names = [v.value for v in values]
            if len(set(names)) != len(names):
                raise ValueError(f"axes.{axis}: duplicate values in {names}")
        known = set(self.axes) | set(MEASURED_AXES)
        for axis, weight in self.axis_emphasis.items():
            if axis not in known:
                raise ValueError(f"axis_emphasis.{axis}: no such axis (known: {sorted(known)})")
            if weight < 0:
                raise ValueError(f"axis_emphasis.{axis}: must be >= 0")
        if self.rubric.total() <= 0:
            raise ValueError("rubric: at least one weight must be positive")
        return self

    def theme_hash(self) -> str:
        """sha256 of the canonical JSON of the theme (names every use of it)."""
        payload = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()

    def emphasis(self, axis: str) -> float:
        return self.axis_emphasis.get(axis, 1.0)
