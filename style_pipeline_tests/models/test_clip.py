"""Model registry: tiny build/save/reload, offline pretrained resolution, auto fallback."""

from __future__ import annotations

import json
import socket

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from style_pipeline.contracts.models import ClipArch, ModelConfig
from style_pipeline.models import (
    CheckpointLoadError,
    PretrainedUnavailable,
    available_devices,
    load_model,
    pick_device,
    tiny_dir,
)
from style_pipeline.models.clip import CONFIG_NAME, WEIGHTS_NAME, find_cached_checkpoint


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


@pytest.mark.parametrize("tag", ["no-such-tag", "laion2b_nonexistent"])
def test_unknown_tag_is_a_clear_error(tmp_path, tag):
    with pytest.raises(PretrainedUnavailable, match="unknown pretrained tag"):
        find_cached_checkpoint("ViT-B-32", tag, tmp_path, None)


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


def test_find_cached_checkpoint_in_registry_cache(tmp_path):
    target = tmp_path / "ViT-B-32" / "laion2b_s34b_b79k" / WEIGHTS_NAME
    target.parent.mkdir(parents=True)
    target.write_bytes(b"weights")
    found, searched = find_cached_checkpoint("ViT-B-32", "laion2b_s34b_b79k", tmp_path, None)
    assert found == target and searched == [str(target.parent)]


def test_find_cached_checkpoint_in_hf_cache(tmp_path):
    repo = tmp_path / "hf" / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "open_clip_model.safetensors").write_bytes(b"weights")
    found, _ = find_cached_checkpoint(
        "ViT-B-32", "laion2b_s34b_b79k", tmp_path / "models", str(tmp_path / "hf")
    )
    assert found == snapshot / "open_clip_model.safetensors"


def test_saved_config_records_architecture(tmp_path):
    config = ModelConfig(profile="tiny", cache_dir=str(tmp_path))
    load_model(config)
    saved = json.loads((tiny_dir(config) / CONFIG_NAME).read_text())
    assert saved["model_cfg"] == config.tiny.open_clip_cfg()
    assert saved["style_pipeline"]["weights"] == "random-init"


@pytest.mark.parametrize(
    "kwargs", [{"image_size": 70, "patch_size": 16}, {"width": 64, "head_width": 48}]
)
def test_bad_arch_is_rejected(kwargs):
    with pytest.raises(ValueError, match="divisible"):
        ClipArch(**kwargs).open_clip_cfg()


def test_device_choice():
    assert pick_device("auto").type == available_devices()[0]
    assert pick_device("cpu").type == "cpu"
    if "cuda" not in available_devices():
        with pytest.raises(RuntimeError, match="not available"):
            pick_device("cuda")


def test_vit_b_32_arch_matches_open_clip_config():
    ours = ClipArch.vit_b_32().open_clip_cfg()
    ref = open_clip.get_model_config("ViT-B-32")
    for key in ("image_size", "layers", "width", "patch_size"):
        assert ours["vision_cfg"][key] == ref["vision_cfg"][key]
    assert ours["text_cfg"] == ref["text_cfg"] and ours["embed_dim"] == ref["embed_dim"]
