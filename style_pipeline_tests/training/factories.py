"""Toy inputs for the training tests, and a progress callback that kills a run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def write_images(folder: Path, sizes: list[tuple[int, int]], seed: int = 0) -> list[Path]:
    """Random RGB images of the given (width, height) sizes, alternating JPEG and PNG."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for index, (width, height) in enumerate(sizes):
        pixels = rng.integers(0, 255, (height, width, 3), dtype=np.uint8)
        path = folder / f"img{index}.{'png' if index % 2 else 'jpg'}"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths


class Killed(Exception):
    """Raised by :func:`kill_at`'s callback: the run stops as if its process died."""


def kill_at(step: int) -> Callable[[Any], None]:
    """A training ``progress`` callback that raises :class:`Killed` at ``step``."""

    def progress(p) -> None:
        if p.step == step:
            raise Killed(step)

    return progress
