"""CLIP loader: tiny build/save/reload, offline pretrained resolution, auto fallback."""

from __future__ import annotations

import json
import socket

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from style_pipeline.contracts.models import ClipArch, ModelConfig
from style_pipeline.models import CheckpointLoadError, PretrainedUnavailable, load_model, tiny_dir
from style_pipeline.models.clip_files import CONFIG_NAME, WEIGHTS_NAME


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection attempt fails the test loudly."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:]}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8))


def _embed(loaded, image: Image.Image) -> np.ndarray:
    with torch.inference_mode():
        batch = loaded.preprocess(image).unsqueeze(0).to(loaded.device)
        return loaded.model.encode_image(batch).cpu().numpy()


def test_tiny_build_save_reload_gives_identical_embeddings(tmp_path, no_network):
    config = ModelConfig(profile="tiny", cache_dir=str(tmp_path / "models"))
    first = load_model(config)
    saved = tiny_dir(config)
    assert (saved / CONFIG_NAME).is_file() and (saved / WEIGHTS_NAME).is_file()
    assert first.source == str(saved) and first.profile_used == "tiny"
    again = load_model(config)  # re-load from the saved files, no rebuild
    # the same seed builds the same weights in memory, without any save/load round trip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.tiny.seed)
        fresh = open_clip.model.CLIP(**config.tiny.open_clip_cfg()).eval()
    image = _image()
    expected = _embed(first, image)
    np.testing.assert_array_equal(_embed(again, image), expected)
    with torch.inference_mode():
        direct = fresh.encode_image(first.preprocess(image).unsqueeze(0)).numpy()
    np.testing.assert_array_equal(direct, expected)
    assert first.model_id == again.model_id and first.dim == config.tiny.embed_dim == 64


def test_tiny_is_reproducible_across_cache_dirs(tmp_path):
    a = load_model(ModelConfig(profile="tiny", cache_dir=str(tmp_path / "a")))
    b = load_model(ModelConfig(profile="tiny", cache_dir=str(tmp_path / "b")))
    assert a.model_id == b.model_id
    c = load_model(
        ModelConfig(profile="tiny", cache_dir=str(tmp_path / "c"), tiny=ClipArch(seed=1))
    )
    assert c.model_id != a.model_id
    assert not np.allclose(_embed(a, _image()), _embed(c, _image()))


def test_auto_falls_back_to_tiny_with_reason_without_network(tmp_path, no_network):
    config = ModelConfig(profile="auto", cache_dir=str(tmp_path / "models"))
    with pytest.warns(RuntimeWarning, match="FELL BACK TO TINY"):
        loaded = load_model(config)
    assert loaded.profile_requested == "auto" and loaded.profile_used == "tiny"
    assert "ViT-B-32/laion2b_s34b_b79k" in loaded.fallback_reason
    assert "not cached locally" in loaded.fallback_reason
    meta = loaded.metadata()
    assert meta["profile_used"] == "tiny" and meta["fallback_reason"]


def test_pretrained_profile_never_downloads(tmp_path, no_network):
    config = ModelConfig(profile="pretrained", cache_dir=str(tmp_path / "models"))
    with pytest.raises(PretrainedUnavailable, match="downloads are disabled"):
        load_model(config)


def test_pretrained_from_local_dir_and_checkpoint_file(tmp_path, no_network):
    tiny = load_model(ModelConfig(profile="tiny", cache_dir=str(tmp_path / "models")))
    image = _image(3)
    from_dir = load_model(
        ModelConfig(profile="pretrained", pretrained=tiny.source, cache_dir=str(tmp_path))
    )
    assert from_dir.profile_used == "pretrained" and from_dir.fallback_reason is None
    from_file = load_model(
        ModelConfig(
            profile="auto",
            model_name=from_dir.model_name,
            pretrained=f"{tiny.source}/{WEIGHTS_NAME}",
            cache_dir=str(tmp_path),
        )
    )
    assert from_file.profile_used == "pretrained"
    assert from_dir.model_id == from_file.model_id == tiny.model_id
    np.testing.assert_array_equal(_embed(from_dir, image), _embed(tiny, image))
    np.testing.assert_array_equal(_embed(from_file, image), _embed(tiny, image))


def test_auto_falls_back_on_a_corrupt_checkpoint(tmp_path, no_network):
    tiny = load_model(ModelConfig(profile="tiny", cache_dir=str(tmp_path / "models")))
    bad = tmp_path / "bad" / WEIGHTS_NAME
    bad.parent.mkdir()
    bad.write_bytes(b"not safetensors" * 8)
    model_name = tiny.model_name  # a registered architecture, so only the weights are wrong
    config = ModelConfig(model_name=model_name, pretrained=str(bad), cache_dir=str(tmp_path))
    with pytest.raises(CheckpointLoadError, match="cannot load"):
        load_model(config.model_copy(update={"profile": "pretrained"}))
    with pytest.warns(RuntimeWarning, match="FELL BACK TO TINY"):
        loaded = load_model(config)
    assert loaded.profile_used == "tiny" and "cannot load" in loaded.fallback_reason


def test_missing_local_path_is_unavailable(tmp_path):
    config = ModelConfig(profile="pretrained", pretrained=str(tmp_path / "nope" / "m.safetensors"))
    with pytest.raises(PretrainedUnavailable, match="not found"):
        load_model(config)


def test_saved_config_records_architecture(tmp_path):
    config = ModelConfig(profile="tiny", cache_dir=str(tmp_path))
    load_model(config)
    saved = json.loads((tiny_dir(config) / CONFIG_NAME).read_text())
    assert saved["model_cfg"] == config.tiny.open_clip_cfg()
    assert saved["style_pipeline"]["weights"] == "random-init"
