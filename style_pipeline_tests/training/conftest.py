"""Shared fixtures for the training tests: the tiny pipeline and a built training folder."""

from __future__ import annotations

import pytest

from style_pipeline.contracts.training import DatasetBuildConfig
from style_pipeline.models.diffusion import resolve_diffusion
from style_pipeline.storage.store import Store
from style_pipeline.training.dataset import build_training_dataset, download_dataset
from style_pipeline_tests.training.factories import write_images

PARTITION = "2026-01-01"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """The tiny SD pipeline, saved once per session and resolved like production."""
    return resolve_diffusion("tiny", cache_dir=tmp_path_factory.mktemp("diffusion_cache"))


@pytest.fixture(scope="session")
def tiny_sdxl_model(tmp_path_factory):
    """The tiny SDXL pipeline (two text encoders), saved once per session."""
    cache = tmp_path_factory.mktemp("diffusion_cache_xl")
    return resolve_diffusion("tiny", cache_dir=cache, family="sdxl")


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A 4-image training folder (64 px buckets) in a local store, plus its local copy."""
    root = tmp_path_factory.mktemp("dataset")
    paths = write_images(root / "src", [(64, 64), (96, 64), (64, 80), (72, 72)])
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(paths)]
    store = Store(root / "storage")
    build_training_dataset(items, store, PARTITION, DatasetBuildConfig(resolution=64))
    return download_dataset(store, PARTITION, root / "local")
