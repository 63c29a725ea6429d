"""Models: one pretrained|tiny|auto resolver (profiles.py) for CLIP, BLIP and diffusion.

The package level exports the CLIP loader (``clip.py``), its errors and the device choice;
BLIP and diffusion are imported from ``models.blip`` and ``models.diffusion``.
"""

from style_pipeline.contracts.models import ClipArch, ModelConfig, Profile
from style_pipeline.models.clip import (
    LoadedModel,
    build_tiny,
    load_model,
    load_pretrained,
    load_tiny,
    tiny_dir,
)
from style_pipeline.models.clip_files import CheckpointLoadError
from style_pipeline.models.device import available_devices, pick_device
from style_pipeline.models.profiles import PretrainedUnavailable

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
