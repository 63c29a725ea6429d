"""Character contracts: the ``characters:`` section, a character's ``character.yaml`` and the
rows of the ``faces`` and ``characters`` tables.

References live in ``data/characters/<name>/`` (a few photos of the character, plus an
optional ``character.yaml``); ``faces`` holds every face of every frame with its embedding,
``characters`` one row per face with the label it got: a character's name, an
``unknown_<n>`` group of faces that match no one, or nothing (a face too small, too
blurred or a lone outlier).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

UNKNOWN_PREFIX = "unknown_"
_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


class CharacterSpec(BaseModel):
    """``data/characters/<name>/character.yaml`` (every field optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME_PATTERN, description="the folder's name")
    trigger_word: str | None = Field(
        None, description="token put in captions of frames showing this character (None: name)"
    )
    aliases: list[str] = Field(default_factory=list, description="other names in captions")
    min_share: float = Field(0.0, ge=0, le=1, description="least share of the curated set")
    max_share: float = Field(1.0, ge=0, le=1, description="largest share of the curated set")

    @model_validator(mode="after")
    def _shares(self) -> CharacterSpec:
        if self.min_share > self.max_share:
            raise ValueError(f"min_share {self.min_share} > max_share {self.max_share}")
        if self.name.startswith(UNKNOWN_PREFIX):
            raise ValueError(f"{UNKNOWN_PREFIX}* names are for unmatched face groups")
        return self

    @property
    def trigger(self) -> str:
        return self.trigger_word or self.name


class CharacterSettings(BaseModel):
    """``characters:`` section of configs/base.yml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    references_dir: str = Field("data/characters", description="one folder per character")
    detector: Literal["auto", "dlib_hog", "dlib_cnn", "opencv"] = Field(
        "auto", description="auto: dlib's HOG detector when dlib is installed, else OpenCV"
    )
    upsample: int = Field(1, ge=0, le=3, description="dlib: image upsamplings (finds small faces)")
    min_detector_score: float = Field(
        0.3,
        description="dlib HOG: faces scoring below are dropped (0.0 kept a mission patch at "
        "0.12 beside a face at 1.16; 0.3 found 24 of 24 faces and no false box, "
        "docs/benchmarks.md)",
    )
    min_face_px: int = Field(40, ge=8, description="faces with a shorter side are not embedded")
    max_edge: int = Field(1280, ge=256, description="frames are downscaled to this long edge")
    match_threshold: float = Field(
        0.55,
        gt=0,
        le=2,
        description="largest descriptor distance to a character (dlib suggests 0.6; 0.55 "
        "kept precision at 1.0 where 0.6 gave 0.984 with one character referenced)",
    )
    match_margin: float = Field(
        0.05, ge=0, description="the best character must be this much closer than the second"
    )
    min_cluster_size: int = Field(3, ge=2, description="HDBSCAN: faces in an unknown group")
    cache_dir: str = Field("characters/cache", description="store prefix of the embedding cache")
    workers: int = Field(
        0, ge=0, description="threads finding faces (0: one per CPU, 1: the step's own)"
    )


class FaceRecord(BaseModel):
    """One row of ``faces``: a face found in a frame."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str
    face_index: int = Field(ge=0, description="0 = the largest face of the frame")
    x0: int
    y0: int
    x1: int
    y1: int
    detector: str = Field(description="dlib_hog | dlib_cnn | opencv_yunet | opencv_haar")
    detector_score: float
    landmarks: list[float] = Field(description="x, y of each landmark point, frame pixels")
    blur: float = Field(description="variance of the Laplacian of the face crop")
    embedding: list[float] | None = Field(
        None, description="face descriptor (dlib: 128 floats); None: too small to embed"
    )
    embedder: str | None = None


class CharacterRecord(BaseModel):
    """One row of ``characters``: the label of one face of ``faces``."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str
    face_index: int
    label: str | None = Field(
        None, description="a character's name, unknown_<n>, or None (no confident label)"
    )
    matched: bool = Field(description="label is a character from the references")
    distance: float | None = Field(None, description="to the label's references (matched only)")
    margin: float | None = Field(None, description="second-best distance minus the best")
    confidence: float = Field(ge=0, le=1)
    x0: int
    y0: int
    x1: int
    y1: int
