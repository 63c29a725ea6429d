"""Models: one pretrained|tiny|auto resolver (profiles.py) for CLIP, BLIP and diffusion.

The package level exports the CLIP loader (``clip.py``), its errors and the device choice;
BLIP and diffusion are imported from ``models.blip`` and ``models.diffusion``. The exports
load on first use (PEP 562): importing a light submodule (``models.profiles``,
``models.registry``, ``models.faces``) does not import torch and open_clip.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_EXPORTS = {
    "ClipArch": "style_pipeline.contracts.models",
    "ModelConfig": "style_pipeline.contracts.models",
    "Profile": "style_pipeline.contracts.models",
    "LoadedModel": "style_pipeline.models.clip",
    "build_tiny": "style_pipeline.models.clip",
    "load_model": "style_pipeline.models.clip",
    "load_pretrained": "style_pipeline.models.clip",
    "load_tiny": "style_pipeline.models.clip",
    "tiny_dir": "style_pipeline.models.clip",
    "CheckpointLoadError": "style_pipeline.models.clip_files",
    "available_devices": "style_pipeline.models.device",
    "pick_device": "style_pipeline.models.device",
    "PretrainedUnavailable": "style_pipeline.models.profiles",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
