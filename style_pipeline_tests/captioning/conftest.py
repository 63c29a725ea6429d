"""Captioning fixtures: a tiny BLIP built once per session, small generated images."""

from __future__ import annotations

import pytest
from PIL import Image

from style_pipeline.contracts.models import BlipModelConfig
from style_pipeline.models.blip import load_blip

WORDS = ["a", "photo", "in", "the", "style", "of", "woman", "street", "golden hour", "tree"]


@pytest.fixture(scope="session")
def tiny_blip_config(tmp_path_factory) -> BlipModelConfig:
    """A tiny BLIP profile whose model is built (and saved) once for the session."""
    config = BlipModelConfig(
        profile="tiny", cache_dir=str(tmp_path_factory.mktemp("blip_cache")), device="cpu"
    )
    load_blip(config, WORDS)
    return config


@pytest.fixture
def tiny_blip(tiny_blip_config):
    """A fresh tiny BLIP loaded from the session's saved copy."""
    return load_blip(tiny_blip_config, WORDS)


@pytest.fixture
def images() -> list[Image.Image]:
    return [Image.new("RGB", (64, 64), (220, 60, 30)), Image.new("RGB", (96, 64), (20, 90, 200))]
