"""LoRA training configuration: one pydantic model, named presets and their YAML files.

Defaults follow diffusers' ``examples/text_to_image/train_text_to_image_lora.py`` (AdamW
betas 0.9/0.999, weight decay 1e-2, eps 1e-8, grad-norm clip 1.0, LoRA on
``to_k/to_q/to_v/to_out.0`` with gaussian init). Presets: ``sd15`` (512 px, rank 16),
``sdxl`` (1024 px, rank 32), ``fast`` (rank 8), ``high_quality`` (rank 64), ``flux_dev`` and
``flux_schnell`` (FLUX.1, flow matching: ``train_dreambooth_lora_flux.py``'s defaults but
1024 px, bf16), ``tiny`` and ``tiny_flux`` (random-init test models, 64 px).
``load_preset`` takes a preset name or a YAML path; ``preset_base_model`` also resolves the
preset's base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from style_pipeline.contracts.models import (
    DEFAULT_PRETRAINED,
    FLUX_DEV_PRETRAINED,
    FLUX_SCHNELL_PRETRAINED,
    SDXL_PRETRAINED,
)
from style_pipeline.contracts.training import LoraTrainingConfig, TrainingSettings
from style_pipeline.paths import PROJECT_ROOT, resolve_local

if TYPE_CHECKING:  # the model resolver is imported when a base model is asked for
    from style_pipeline.models.diffusion import ResolvedDiffusion

PRESET_DIR = PROJECT_ROOT / "configs" / "presets"


PRESETS: dict[str, LoraTrainingConfig] = {
    "sd15": LoraTrainingConfig(
        name="sd15",
        pretrained=DEFAULT_PRETRAINED,
        resolution=512,
        rank=16,
        learning_rate=1e-4,
        lr_scheduler="cosine",
        lr_warmup_steps=100,
        max_train_steps=2000,
        train_batch_size=2,
        gradient_accumulation_steps=2,
        mixed_precision="fp16",
        gradient_checkpointing=True,
    ),
    "sdxl": LoraTrainingConfig(
        name="sdxl",
        pretrained=SDXL_PRETRAINED,
        model_family="sdxl",
        resolution=1024,
        rank=32,
        learning_rate=1e-4,
        lr_scheduler="cosine",
        lr_warmup_steps=100,
        max_train_steps=2000,
        train_batch_size=1,
        gradient_accumulation_steps=4,
        mixed_precision="bf16",
        gradient_checkpointing=True,
    ),
    "fast": LoraTrainingConfig(
        name="fast",
        resolution=512,
        rank=8,
        learning_rate=2e-4,
        lr_scheduler="constant",
        max_train_steps=500,
        train_batch_size=2,
        mixed_precision="fp16",
        gradient_checkpointing=True,
    ),
    "high_quality": LoraTrainingConfig(
        name="high_quality",
        resolution=512,
        rank=64,
        learning_rate=5e-5,
        lr_scheduler="cosine",
        lr_warmup_steps=200,
        max_train_steps=6000,
        train_batch_size=2,
        gradient_accumulation_steps=4,
        mixed_precision="fp16",
        gradient_checkpointing=True,
        train_text_encoder=True,
        snr_gamma=5.0,
    ),
    "tiny": LoraTrainingConfig(
        name="tiny",
        profile="tiny",
        resolution=64,
        rank=4,
        learning_rate=1e-3,
        max_train_steps=4,
        train_batch_size=1,
    ),
    # FLUX.1-dev: guidance-distilled, so the guidance embedding gets a value while training
    # (1, as in diffusers' FLUX LoRA README); T5 at its full 512 tokens.
    "flux_dev": LoraTrainingConfig(
        name="flux_dev",
        pretrained=FLUX_DEV_PRETRAINED,
        model_family="flux",
        guidance_scale=1.0,
        max_sequence_length=512,
        resolution=1024,
        rank=16,
        learning_rate=1e-4,
        lr_scheduler="constant",
        max_train_steps=1000,
        train_batch_size=1,
        gradient_accumulation_steps=4,
        mixed_precision="bf16",
        gradient_checkpointing=True,
    ),
    # FLUX.1-schnell: timestep-distilled, no guidance embedding, T5 trained at 256 tokens.
    "flux_schnell": LoraTrainingConfig(
        name="flux_schnell",
        pretrained=FLUX_SCHNELL_PRETRAINED,
        model_family="flux",
        max_sequence_length=256,
        resolution=1024,
        rank=16,
        learning_rate=1e-4,
        lr_scheduler="constant",
        max_train_steps=1000,
        train_batch_size=1,
        gradient_accumulation_steps=4,
        mixed_precision="bf16",
        gradient_checkpointing=True,
    ),
    "tiny_flux": LoraTrainingConfig(
        name="tiny_flux",
        profile="tiny",
        pretrained=FLUX_DEV_PRETRAINED,  # what "auto" would look for; tiny builds its own
        model_family="flux",
        max_sequence_length=32,
        resolution=64,
        rank=4,
        learning_rate=1e-3,
        max_train_steps=4,
        train_batch_size=1,
    ),
}


def preset_path(name: str) -> Path:
    return PRESET_DIR / f"{name}.yml"


def load_preset(path_or_name: str | Path) -> LoraTrainingConfig:
    """A config from a YAML file path, or from a preset name (its YAML file, else the builtin).

    The YAML is a flat mapping of :class:`LoraTrainingConfig` fields; unknown keys are errors.
    """
    candidate = Path(path_or_name)
    if candidate.suffix in (".yml", ".yaml") or candidate.is_file():
        if not candidate.is_file():
            raise FileNotFoundError(f"preset file not found: {candidate}")
        return config_from_yaml(candidate)
    name = str(path_or_name)
    if preset_path(name).is_file():
        return config_from_yaml(preset_path(name))
    if name in PRESETS:
        return PRESETS[name]
    raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")


def config_from_yaml(path: Path) -> LoraTrainingConfig:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a preset must be a mapping, got {type(data).__name__}")
    data.setdefault("name", Path(path).stem)
    return LoraTrainingConfig.model_validate(data)


# Written to preset files even when equal to the default, so a preset reads on its own.
PRESET_KEY_FIELDS = (
    "name",
    "profile",
    "pretrained",
    "model_family",
    "resolution",
    "rank",
    "alpha",
    "learning_rate",
    "lr_scheduler",
    "lr_warmup_steps",
    "num_train_epochs",
    "max_train_steps",
    "train_batch_size",
    "gradient_accumulation_steps",
    "mixed_precision",
    "gradient_checkpointing",
    "train_text_encoder",
    "seed",
)
# Key fields of FLUX presets only (SD presets leave them out: they must stay default there).
FLUX_PRESET_KEY_FIELDS = ("guidance_scale", "weighting_scheme", "max_sequence_length")


def config_to_yaml(config: LoraTrainingConfig) -> str:
    """YAML of ``config``: the key fields always, other fields only when not default."""
    full = config.model_dump(mode="json")
    changed = config.model_dump(mode="json", exclude_defaults=True)
    keys: tuple[str, ...] = PRESET_KEY_FIELDS
    if config.model_family == "flux":
        keys += FLUX_PRESET_KEY_FIELDS
    data = {k: full[k] for k in keys}
    data.update({k: v for k, v in changed.items() if k not in data})
    return yaml.safe_dump(data, sort_keys=False)


def preset_base_model(
    settings: TrainingSettings,
) -> tuple[LoraTrainingConfig, ResolvedDiffusion]:
    """``settings.preset``'s config and its base model, resolved for the preset's profile,
    pretrained id, seed and family in ``settings.model_cache_dir``."""
    from style_pipeline.models.diffusion import resolve_diffusion

    config = load_preset(settings.preset)
    model = resolve_diffusion(
        config.profile,
        config.pretrained,
        resolve_local(settings.model_cache_dir),
        config.seed,
        config.model_family,
    )
    return config, model
