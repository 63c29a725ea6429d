"""Real faces for the characters tests: reference folders and augmented views of two people
(Grace Hopper from matplotlib, Eileen Collins from scikit-image)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from style_pipeline.demo.faces import (
    Person,
    astronaut,
    augment,
    face_crop,
    grace_hopper,
    write_jpeg,
)


def eileen() -> Person:
    person = astronaut()
    assert person is not None, "scikit-image (a dev dependency) ships the astronaut photo"
    return person


def reference_folder(root: Path, name: str, person: Person, yaml_text: str | None = None) -> Path:
    """``root/name/`` with one reference photo: ``person``'s face crop."""
    folder = root / name
    write_jpeg(face_crop(person), folder / "face.jpg")
    if yaml_text is not None:
        (folder / "character.yaml").write_text(yaml_text)
    return folder


def views(person: Person, n: int, seed: int, strength: float = 0.8) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [augment(person, rng, strength=strength).image for _ in range(n)]


__all__ = ["eileen", "grace_hopper", "reference_folder", "views"]
