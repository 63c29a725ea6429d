"""Model registry: pretrained vs tiny open_clip builders, device choice, caching."""

from style_pipeline.contracts.models import ClipArch, ModelConfig, Profile
from style_pipeline.models.clip import CheckpointLoadError, PretrainedUnavailable
from style_pipeline.models.device import available_devices, pick_device
from style_pipeline.models.registry import (
    LoadedModel,
    build_tiny,
    load_model,
    load_pretrained,
    load_tiny,
    tiny_dir,
)

__all__ = [
    "CheckpointLoadError",
    "ClipArch",
    "LoadedModel",
    "ModelConfig",
    "PretrainedUnavailable",
    "Profile",
    "available_devices",
    "build_tiny",
    "load_model",
    "load_pretrained",
    "load_tiny",
    "pick_device",
    "tiny_dir",
]
