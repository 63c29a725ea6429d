"""open_clip files: offline lookup of cached pretrained weights, tiny architecture configs."""

from __future__ import annotations

import open_clip
import pytest

from style_pipeline.contracts.models import ClipArch
from style_pipeline.models.clip_files import WEIGHTS_NAME, find_cached_checkpoint
from style_pipeline.models.profiles import PretrainedUnavailable


@pytest.mark.parametrize("tag", ["no-such-tag", "laion2b_nonexistent"])
def test_unknown_tag_is_a_clear_error(tmp_path, tag):
    with pytest.raises(PretrainedUnavailable, match="unknown pretrained tag"):
        find_cached_checkpoint("ViT-B-32", tag, tmp_path, None)


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


@pytest.mark.parametrize(
    "kwargs", [{"image_size": 70, "patch_size": 16}, {"width": 64, "head_width": 48}]
)
def test_bad_arch_is_rejected(kwargs):
    with pytest.raises(ValueError, match="divisible"):
        ClipArch(**kwargs).open_clip_cfg()


def test_vit_b_32_arch_matches_open_clip_config():
    ours = ClipArch.vit_b_32().open_clip_cfg()
    ref = open_clip.get_model_config("ViT-B-32")
    for key in ("image_size", "layers", "width", "patch_size"):
        assert ours["vision_cfg"][key] == ref["vision_cfg"][key]
    assert ours["text_cfg"] == ref["text_cfg"] and ours["embed_dim"] == ref["embed_dim"]
