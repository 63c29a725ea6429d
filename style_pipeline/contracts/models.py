"""How each model is obtained: profiles, tiny architectures, devices (no model library here).

One ``pretrained | tiny | auto`` vocabulary for every model kind (CLIP, BLIP, diffusion);
``models/profiles.py`` resolves a config to a loaded model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from style_pipeline.paths import DEFAULT_MODEL_DIR, resolve_local

Profile = Literal["pretrained", "tiny", "auto"]
DevicePreference = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["fp32", "fp16", "bf16"]
DiffusionProfile = Profile
ModelFamily = Literal["sd", "sdxl", "flux"]
DEFAULT_PRETRAINED = "stable-diffusion-v1-5/stable-diffusion-v1-5"
SDXL_PRETRAINED = "stabilityai/stable-diffusion-xl-base-1.0"
FLUX_DEV_PRETRAINED = "black-forest-labs/FLUX.1-dev"  # gated on the Hub: accept its licence
FLUX_SCHNELL_PRETRAINED = "black-forest-labs/FLUX.1-schnell"
BLIP_BASE_ID = "Salesforce/blip-image-captioning-base"


class ClipArch(BaseModel):
    """An open_clip ViT + text-transformer architecture; defaults are the tiny test model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("tiny-vit", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    embed_dim: int = Field(64, gt=0)
    image_size: int = Field(64, ge=16)
    patch_size: int = Field(16, ge=2)
    width: int = Field(64, gt=0)
    layers: int = Field(2, gt=0)
    head_width: int = Field(32, gt=0)
    text_width: int = Field(64, gt=0)
    text_heads: int = Field(2, gt=0)
    text_layers: int = Field(2, gt=0)
    context_length: int = Field(77, gt=1)
    vocab_size: int = Field(49408, gt=0)
    seed: int = 0

    @classmethod
    def vit_b_32(cls) -> ClipArch:
        """ViT-B-32's shape (about 151M parameters), for benchmarks of a full-size model."""
        return cls(
            name="random-vit-b-32",
            embed_dim=512,
            image_size=224,
            patch_size=32,
            width=768,
            layers=12,
            head_width=64,
            text_width=512,
            text_heads=8,
            text_layers=12,
        )

    def open_clip_cfg(self) -> dict[str, Any]:
        """The ``model_cfg`` dict open_clip builds a ``CLIP`` from."""
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} not divisible by {self.patch_size}")
        if self.width % self.head_width or self.text_width % self.text_heads:
            raise ValueError("width must be divisible by head_width (and text width by heads)")
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": {
                "image_size": self.image_size,
                "layers": self.layers,
                "width": self.width,
                "head_width": self.head_width,
                "patch_size": self.patch_size,
            },
            "text_cfg": {
                "context_length": self.context_length,
                "vocab_size": self.vocab_size,
                "width": self.text_width,
                "heads": self.text_heads,
                "layers": self.text_layers,
            },
        }

    def fingerprint(self) -> str:
        """Short stable hash of the architecture and seed (names the cache directory)."""
        blob = json.dumps(self.model_dump(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]


class ModelConfig(BaseModel):
    """How the CLIP model is obtained: profile, weights, cache and device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: Profile = "auto"
    model_name: str = Field("ViT-B-32", description="open_clip architecture name")
    pretrained: str = Field(
        "laion2b_s34b_b79k",
        description="open_clip pretrained tag, or a local directory / checkpoint file",
    )
    cache_dir: str = Field(DEFAULT_MODEL_DIR, description="registry cache (relative: project root)")
    hf_cache_dir: str | None = Field(
        None, description="Hugging Face hub cache to search (None: the library default)"
    )
    device: DevicePreference = "auto"
    precision: Precision = Field(
        "fp32",
        description="weights' dtype; inputs are cast to it, vectors come out float32. A "
        "precision the device cannot run falls back (fp16 -> bf16 -> fp32), said in metadata",
    )
    tiny: ClipArch = ClipArch()

    def cache_path(self) -> Path:
        """The cache directory as an absolute local path."""
        return resolve_local(self.cache_dir)


class TinyBlipArch(BaseModel):
    """Shape of the random-init test BLIP (a few hundred thousand parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("tiny-blip", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    image_size: int = Field(64, ge=16)
    patch_size: int = Field(16, ge=2)
    vision_hidden: int = Field(32, gt=0)
    vision_layers: int = Field(2, gt=0)
    vision_heads: int = Field(2, gt=0)
    text_hidden: int = Field(32, gt=0)
    text_layers: int = Field(2, gt=0)
    text_heads: int = Field(2, gt=0)
    intermediate: int = Field(64, gt=0)
    max_positions: int = Field(128, ge=16)
    seed: int = 0


class BlipModelConfig(BaseModel):
    """How the BLIP captioner is obtained: profile, weights, cache and device."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: Profile = "auto"
    pretrained: str = Field(BLIP_BASE_ID, description="hub id (cached) or local directory")
    cache_dir: str = Field(DEFAULT_MODEL_DIR, description="where tiny models are saved")
    hf_cache_dir: str | None = Field(None, description="Hugging Face cache (None: default)")
    device: DevicePreference = "auto"
    tiny: TinyBlipArch = TinyBlipArch()

    def cache_path(self) -> Path:
        return resolve_local(self.cache_dir)


class ModelsSettings(BaseModel):
    """``models:`` section: may the pipeline fetch pretrained weights itself?"""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_download: bool = Field(
        False,
        description="let the auto/pretrained profiles download missing pretrained weights "
        "from the Hugging Face Hub (HF_ENDPOINT) instead of falling back to tiny; never while "
        "HF_HUB_OFFLINE is set. Off: fetch them with `style-pipeline models pull`",
    )
