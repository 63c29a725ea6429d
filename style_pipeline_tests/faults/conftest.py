"""Fixtures of the fault suite: one set of sample media and one clean run shared by its tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from style_pipeline.demo.samples import make_cut_video, make_photos
from style_pipeline_tests.faults.child_runs import Roots

DAY = "2026-01-05"
SELECT = "key:raw_media or key:frames or key:embeddings"


@pytest.fixture(scope="package")
def media(tmp_path_factory) -> Path:
    """Three small cut videos and six photos in a dated drop folder (one partition)."""
    root = tmp_path_factory.mktemp("media")
    day = root / DAY
    for i in range(3):
        make_cut_video(
            day / f"clip{i}.mp4", width=320, height=180, fps=10, shot_seconds=[1.0] * 3, seed=i
        )
    make_photos(day, 6, seed=1, size=(320, 240))
    return root


@pytest.fixture(scope="package")
def models(tmp_path_factory) -> Path:
    """A tiny-model cache shared by every child run (built once, read by the others)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="package")
def clean(tmp_path_factory, media, models) -> Roots:
    """The reference: ``SELECT`` for ``DAY`` run once, undisturbed, in its own roots."""
    roots = Roots(tmp_path_factory.mktemp("clean"), models).create(media)
    roots.run(DAY, SELECT)
    return roots


@pytest.fixture
def fresh(tmp_path, media, models) -> Roots:
    """Empty roots with the same media, for the run a test disturbs."""
    return Roots(tmp_path / "faulty", models).create(media)
