"""LoRA models for training: the pipeline frozen with PEFT adapters attached, and the
trained adapters saved in diffusers' ``pytorch_lora_weights.safetensors`` format.

Follows diffusers' ``train_text_to_image_lora.py`` without Accelerate; SD 1.x/2.x and SDXL
pipelines (two text encoders) alike, and FLUX.1 as in ``train_dreambooth_lora_flux.py``
(LoRA on the transformer, CLIP and T5 frozen, a flow-matching scheduler). The loss is in
``objective.py`` (FLUX's in ``flow_matching.py``), the loop in ``train_loop.py``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from style_pipeline.contracts.training import LoraTrainingConfig

if TYPE_CHECKING:  # diffusers is imported lazily (heavy)
    from diffusers.loaders.lora_pipeline import (
        FluxLoraLoaderMixin,
        StableDiffusionLoraLoaderMixin,
        StableDiffusionXLLoraLoaderMixin,
    )
    from diffusers.models.autoencoders.autoencoder_kl import AutoencoderKL
    from diffusers.schedulers.scheduling_ddpm import DDPMScheduler
    from diffusers.schedulers.scheduling_flow_match_euler_discrete import (
        FlowMatchEulerDiscreteScheduler,
    )
    from peft import PeftConfig

WEIGHT_NAME = "pytorch_lora_weights.safetensors"
log = logging.getLogger(__name__)


@dataclass
class LoraModels:
    """The pipeline's modules, frozen, with LoRA adapters attached.

    ``unet`` is the denoising network the LoRA is on, whatever its kind: the UNet of SD and
    SDXL, FLUX's ``FluxTransformer2DModel`` (``pipe.transformer``) for ``family`` flux.
    """

    pipeline_cls: type[
        StableDiffusionLoraLoaderMixin | StableDiffusionXLLoraLoaderMixin | FluxLoraLoaderMixin
    ]
    unet: torch.nn.Module
    vae: AutoencoderKL
    text_encoders: list[torch.nn.Module]  # flux: [CLIP, T5]
    tokenizers: list
    noise_scheduler: DDPMScheduler | FlowMatchEulerDiscreteScheduler
    family: str  # "sd", "sdxl" or "flux"
    device: torch.device
    weight_dtype: torch.dtype
    train_text_encoder: bool
    autocast_dtype: torch.dtype | None = None
    params: list[torch.nn.Parameter] = field(default_factory=list)
    # What the loss calls for the noise prediction: the UNet, or its torch.compile wrapper
    # (same parameters; ``unet`` stays the plain module for saving).
    denoiser: Callable[..., Any] | None = None
    max_sequence_length: int | None = None  # flux: T5 tokens per caption

    def lora_parameter_count(self) -> int:
        return sum(p.numel() for p in self.params)

    def predict_noise(self, *args, **kwargs):
        if self.denoiser is not None:
            return self.denoiser(*args, **kwargs)
        return self.unet(*args, **kwargs)


def autocast_context(models: LoraModels) -> contextlib.AbstractContextManager:
    """The mixed-precision autocast of training (a no-op in fp32)."""
    if models.autocast_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(models.device.type, dtype=models.autocast_dtype)


def speed_up(models: LoraModels, compile_unet: bool) -> list[str]:
    """CUDA-only speed-ups: channels_last UNet and VAE (convolutions run in NHWC on tensor
    cores), and ``torch.compile`` of the UNet when asked. Returns notes for the metadata.

    Attention needs nothing here: diffusers picks ``AttnProcessor2_0`` (PyTorch SDPA) on
    torch 2 and nothing in this project sets another processor; the note says which runs.
    """
    processors = {type(p).__name__ for p in getattr(models.unet, "attn_processors", {}).values()}
    notes = [f"attention: {', '.join(sorted(processors)) or 'none'}"]
    flux = models.family == "flux"  # FLUX's transformer has no convolutions to go NHWC
    name = "transformer" if flux else "UNet"
    if models.device.type != "cuda":
        if compile_unet:
            notes.append(f"compile_unet ignored on CPU: the {name} runs eagerly")
            log.info(notes[-1])
        return notes
    if not flux:
        models.unet.to(memory_format=torch.channels_last)
    torch.nn.Module.to(
        models.vae, memory_format=torch.channels_last
    )  # ModelMixin.to is typed narrower
    notes.append("cuda: channels_last VAE" if flux else "cuda: channels_last UNet and VAE")
    if compile_unet:
        models.denoiser = torch.compile(models.unet)
        notes.append(
            f"cuda: {name} compiled with torch.compile (first steps of each bucket compile)"
        )
    return notes


def _sorted_metadata(module: torch.nn.Module) -> dict:
    """PEFT config as JSON-ready dict; sets become sorted lists so the file is reproducible."""
    # ``peft_config`` is set by ``add_adapter``; nn.Module types unknown attributes loosely.
    peft_config = cast("dict[str, PeftConfig]", module.peft_config)
    meta = peft_config["default"].to_dict()
    return {k: sorted(v) if isinstance(v, set) else v for k, v in meta.items()}


def _move(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """``module.to`` only when device or dtype differ (diffusers warns on no-op casts)."""
    if module.device != device:
        module.to(device)
    if module.dtype != dtype:
        module.to(dtype=dtype)


def pipeline_family(pipe) -> str:
    """``flux`` for a ``FluxPipeline``, ``sdxl`` for two CLIP text encoders, else ``sd``."""
    from diffusers import FluxPipeline

    if isinstance(pipe, FluxPipeline):
        return "flux"
    return "sdxl" if getattr(pipe, "text_encoder_2", None) is not None else "sd"


def attach_lora(
    pipe, config: LoraTrainingConfig, device: torch.device, mixed_precision: str
) -> LoraModels:
    """Freeze the pipeline, cast frozen weights, add LoRA adapters (seeded) and enable options."""
    from diffusers import DDPMScheduler, FlowMatchEulerDiscreteScheduler
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    family = pipeline_family(pipe)
    # the network the LoRA trains: FLUX's transformer, else the UNet
    denoiser = pipe.transformer if family == "flux" else pipe.unet
    text_encoders = [pipe.text_encoder]
    if getattr(pipe, "text_encoder_2", None) is not None:
        text_encoders.append(pipe.text_encoder_2)
    tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if len(text_encoders) == 2 else [])
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        mixed_precision, torch.float32
    )
    vae_dtype = torch.float32 if pipe.vae.config.force_upcast else weight_dtype
    for module, dtype in ((denoiser, weight_dtype), (pipe.vae, vae_dtype)):
        module.requires_grad_(False)
        _move(module, device, dtype)
    for te in text_encoders:
        te.requires_grad_(False)
        _move(te, device, weight_dtype)

    torch.manual_seed(config.seed)
    denoiser.add_adapter(
        LoraConfig(
            r=config.rank,
            lora_alpha=config.lora_alpha,  # type: ignore[arg-type]  # peft annotates int; alpha/r is a float scale
            init_lora_weights="gaussian",
            target_modules=list(config.target_modules),
        )
    )
    trainable = [denoiser]
    if config.train_text_encoder:
        te_config = LoraConfig(
            r=config.rank,
            lora_alpha=config.lora_alpha,  # type: ignore[arg-type]  # peft annotates int; alpha/r is a float scale
            init_lora_weights="gaussian",
            target_modules=list(config.text_encoder_target_modules),
        )
        for te in text_encoders:
            te.add_adapter(te_config)
        trainable += text_encoders
    if mixed_precision in ("fp16", "bf16"):
        cast_training_params(trainable, dtype=torch.float32)
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
        if config.train_text_encoder:
            for te in text_encoders:
                te.gradient_checkpointing_enable()
    params = [p for m in trainable for p in m.parameters() if p.requires_grad]
    # a fresh copy: training indexes the scheduler's initial timesteps and sigmas
    scheduler_cls = FlowMatchEulerDiscreteScheduler if family == "flux" else DDPMScheduler
    return LoraModels(
        pipeline_cls=type(pipe),
        unet=denoiser,
        vae=pipe.vae,
        text_encoders=text_encoders,
        tokenizers=tokenizers,
        noise_scheduler=scheduler_cls.from_config(pipe.scheduler.config),
        family=family,
        device=device,
        weight_dtype=weight_dtype,
        train_text_encoder=config.train_text_encoder,
        autocast_dtype=weight_dtype if mixed_precision in ("fp16", "bf16") else None,
        params=params,
        max_sequence_length=config.max_sequence_length if family == "flux" else None,
    )


def save_lora(models: LoraModels, output_dir: Path) -> Path:
    """Write ``pytorch_lora_weights.safetensors`` in diffusers format (``load_lora_weights``)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    _move(models.unet, models.device, torch.float32)
    state = get_peft_model_state_dict(models.unet)
    if models.family == "flux":  # PEFT names (lora_A/lora_B), as the diffusers FLUX example
        kwargs = {
            "transformer_lora_layers": state,
            "transformer_lora_adapter_metadata": _sorted_metadata(models.unet),
        }
    else:
        kwargs = {
            "unet_lora_layers": convert_state_dict_to_diffusers(state),
            "unet_lora_adapter_metadata": _sorted_metadata(models.unet),
        }
    if models.train_text_encoder:
        names = ["text_encoder", "text_encoder_2"]
        for name, te in zip(names, models.text_encoders, strict=False):
            _move(te, models.device, torch.float32)
            kwargs[f"{name}_lora_layers"] = convert_state_dict_to_diffusers(
                get_peft_model_state_dict(te)
            )
            kwargs[f"{name}_lora_adapter_metadata"] = _sorted_metadata(te)
    output_dir.mkdir(parents=True, exist_ok=True)
    models.pipeline_cls.save_lora_weights(
        save_directory=str(output_dir), safe_serialization=True, weight_name=WEIGHT_NAME, **kwargs
    )
    return canonicalize_safetensors(output_dir / WEIGHT_NAME)


def canonicalize_safetensors(path: Path) -> Path:
    """Rewrite the header of a safetensors file as sorted, compact JSON (data bytes untouched).

    The safetensors writer keeps ``__metadata__`` in a hash map, so the same tensors and
    metadata can serialise with their keys in a different order from one save to the next.
    A canonical header makes equal content give an equal sha256. Offsets in the header are
    relative to the data section, so they stay valid.
    """
    raw = path.read_bytes()
    size = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + size])
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw[8 + size :])
    return path
