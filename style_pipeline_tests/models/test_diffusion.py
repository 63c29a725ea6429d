"""Diffusion profiles: tiny save -> from_pretrained reload, offline lookup, auto fallback."""

from __future__ import annotations

import json

import pytest
import torch

from style_pipeline.models.diffusion import (
    default_cache_dir,
    find_pretrained,
    load_pipeline,
    resolve_diffusion,
    save_tiny_pipeline,
    tiny_fingerprint,
)
from style_pipeline.models.diffusion_configs import (
    SD15_UNET_CONFIG,
    TINY_UNET_CONFIG,
    build_components,
    build_tiny_tokenizer,
)
from style_pipeline.paths import DEFAULT_MODEL_DIR, resolve_local


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("cache"), seed=0)


def test_tiny_folder_is_a_pipeline(tiny_dir):
    index = json.loads((tiny_dir / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tiny_dir / part).is_dir(), part
    assert list((tiny_dir / "unet").glob("*.safetensors"))
    assert tiny_dir.name == f"tiny-{tiny_fingerprint(0)}"


def test_reload_matches_a_fresh_build(tiny_dir):
    pipe = load_pipeline(tiny_dir)
    assert type(pipe).__name__ == "StableDiffusionPipeline"
    assert tuple(pipe.unet.config.block_out_channels) == TINY_UNET_CONFIG["block_out_channels"]
    assert pipe.unet.config.cross_attention_dim == 32 and pipe.unet.config.sample_size == 32
    parts = build_components("tiny", seed=0)
    unet, text_encoder, tokenizer = parts["unet"], parts["text_encoder"], parts["tokenizer"]
    for name, value in unet.state_dict().items():
        assert torch.equal(pipe.unet.state_dict()[name], value), name
    first = next(iter(text_encoder.state_dict()))
    assert torch.equal(pipe.text_encoder.state_dict()[first], text_encoder.state_dict()[first])
    assert len(pipe.tokenizer) == len(tokenizer) == text_encoder.config.vocab_size


def test_second_save_reuses_the_folder(tiny_dir):
    stamp = (tiny_dir / "model_index.json").stat().st_mtime_ns
    assert save_tiny_pipeline(tiny_dir.parent, seed=0) == tiny_dir
    assert (tiny_dir / "model_index.json").stat().st_mtime_ns == stamp
    assert tiny_fingerprint(1) != tiny_fingerprint(0)


@pytest.mark.parametrize("text", ["a red fox", "Ünïcode — émoji 🦊", ""])
def test_tiny_tokenizer_handles_any_text(tmp_path, text):
    tokenizer = build_tiny_tokenizer(tmp_path / "tok")
    ids = tokenizer([text], padding="max_length", max_length=77, truncation=True).input_ids[0]
    assert len(ids) == 77 and max(ids) < len(tokenizer)
    assert ids[0] == tokenizer.bos_token_id


def test_find_pretrained_is_offline_only(tmp_path, tiny_dir):
    assert find_pretrained(str(tiny_dir)) == str(tiny_dir)
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        find_pretrained(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="offline lookup only"):
        find_pretrained("no-such-org/no-such-model")


def test_profiles(tiny_dir):
    with pytest.warns(RuntimeWarning, match="diffusion profile auto FELL BACK TO TINY"):
        fallback = resolve_diffusion("auto", pretrained="no-such-org/x", cache_dir=tiny_dir.parent)
    assert (fallback.profile, fallback.path) == ("tiny", str(tiny_dir))
    assert "FALLBACK TO TINY" in fallback.reason
    assert fallback.as_metadata()["model_profile_requested"] == "auto"
    local = resolve_diffusion("auto", pretrained=str(tiny_dir), cache_dir=tiny_dir.parent)
    assert local.profile == "pretrained"
    with pytest.raises(FileNotFoundError):
        resolve_diffusion("pretrained", pretrained="no-such-org/x")
    with pytest.raises(ValueError, match="unknown diffusion profile"):
        resolve_diffusion("huge")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown component size"):
        build_components("huge")  # type: ignore[arg-type]


def test_default_cache_dir_hangs_off_the_shared_model_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("STYLE_PIPELINE_MODEL_CACHE", raising=False)
    assert default_cache_dir() == resolve_local(DEFAULT_MODEL_DIR) / "diffusion"
    monkeypatch.setenv("STYLE_PIPELINE_MODEL_CACHE", str(tmp_path))
    assert default_cache_dir() == tmp_path


def test_tiny_sdxl_save_and_reload(tmp_path):
    path = save_tiny_pipeline(tmp_path, seed=0, family="sdxl")
    assert path.name.startswith("tiny-sdxl-") and path != save_tiny_pipeline(tmp_path, seed=0)
    pipe = load_pipeline(path)
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    assert pipe.unet.config.addition_embed_type == "text_time"
    assert pipe.text_encoder_2.config.projection_dim == 32
    with pytest.warns(RuntimeWarning, match="FELL BACK TO TINY"):
        resolved = resolve_diffusion(
            "auto", pretrained="no-such/xl", cache_dir=tmp_path, family="sdxl"
        )
    assert resolved.path == str(path)


def test_sd15_unet_config_has_sd15_size():
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**SD15_UNET_CONFIG)
    assert sum(p.numel() for p in unet.parameters()) == 859_520_964
