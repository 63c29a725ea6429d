"""The base of every config section: frozen, unknown keys refused."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section of ``configs/base.yml``: immutable, extra keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)
