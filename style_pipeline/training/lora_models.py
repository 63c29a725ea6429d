"""The LoRA training step: diffusers' ``train_text_to_image_lora.py`` math, without Accelerate.

UNet (and optionally text-encoder) LoRA adapters through PEFT, latents from the frozen VAE,
noise + random timesteps from a seeded generator, noise-prediction MSE (optionally Min-SNR
weighted), AdamW, a diffusers LR schedule, gradient accumulation and clipping. SD 1.x/2.x
pipelines and SDXL pipelines (two text encoders, pooled embeds, size/crop time ids) alike.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from style_pipeline.contracts.training import LoraTrainingConfig

WEIGHT_NAME = "pytorch_lora_weights.safetensors"


@dataclass
class LoraModels:
    """The pipeline's modules, frozen, with LoRA adapters attached."""

    pipeline_cls: type
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoders: list[torch.nn.Module]
    tokenizers: list
    noise_scheduler: object
    family: str  # "sd" or "sdxl"
    device: torch.device
    weight_dtype: torch.dtype
    train_text_encoder: bool
    autocast_dtype: torch.dtype | None = None
    params: list[torch.nn.Parameter] = field(default_factory=list)

    def lora_parameter_count(self) -> int:
        return sum(p.numel() for p in self.params)


def _sorted_metadata(module: torch.nn.Module) -> dict:
    """PEFT config as JSON-ready dict; sets become sorted lists so the file is reproducible."""
    meta = module.peft_config["default"].to_dict()
    return {k: sorted(v) if isinstance(v, set) else v for k, v in meta.items()}


def _move(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """``module.to`` only when device or dtype differ (diffusers warns on no-op casts)."""
    if module.device != device:
        module.to(device)
    if module.dtype != dtype:
        module.to(dtype=dtype)


def attach_lora(
    pipe, config: LoraTrainingConfig, device: torch.device, mixed_precision: str
) -> LoraModels:
    """Freeze the pipeline, cast frozen weights, add LoRA adapters (seeded) and enable options."""
    from diffusers import DDPMScheduler
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig

    text_encoders = [pipe.text_encoder]
    if getattr(pipe, "text_encoder_2", None) is not None:
        text_encoders.append(pipe.text_encoder_2)
    tokenizers = [pipe.tokenizer] + ([pipe.tokenizer_2] if len(text_encoders) == 2 else [])
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(
        mixed_precision, torch.float32
    )
    vae_dtype = torch.float32 if pipe.vae.config.force_upcast else weight_dtype
    for module, dtype in ((pipe.unet, weight_dtype), (pipe.vae, vae_dtype)):
        module.requires_grad_(False)
        _move(module, device, dtype)
    for te in text_encoders:
        te.requires_grad_(False)
        _move(te, device, weight_dtype)

    torch.manual_seed(config.seed)
    pipe.unet.add_adapter(
        LoraConfig(
            r=config.rank,
            lora_alpha=config.lora_alpha,
            init_lora_weights="gaussian",
            target_modules=list(config.target_modules),
        )
    )
    trainable = [pipe.unet]
    if config.train_text_encoder:
        te_config = LoraConfig(
            r=config.rank,
            lora_alpha=config.lora_alpha,
            init_lora_weights="gaussian",
            target_modules=list(config.text_encoder_target_modules),
        )
        for te in text_encoders:
            te.add_adapter(te_config)
        trainable += text_encoders
    if mixed_precision in ("fp16", "bf16"):
        cast_training_params(trainable, dtype=torch.float32)
    if config.gradient_checkpointing:
        pipe.unet.enable_gradient_checkpointing()
        if config.train_text_encoder:
            for te in text_encoders:
                te.gradient_checkpointing_enable()
    params = [p for m in trainable for p in m.parameters() if p.requires_grad]
    return LoraModels(
        pipeline_cls=type(pipe),
        unet=pipe.unet,
        vae=pipe.vae,
        text_encoders=text_encoders,
        tokenizers=tokenizers,
        noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
        family="sdxl" if len(text_encoders) == 2 else "sd",
        device=device,
        weight_dtype=weight_dtype,
        train_text_encoder=config.train_text_encoder,
        autocast_dtype=weight_dtype if mixed_precision in ("fp16", "bf16") else None,
        params=params,
    )


def encode_captions(models: LoraModels, captions: list[str]):
    """Text conditioning: SD -> last hidden state; SDXL -> both penultimate states + pooled."""
    ids = [
        tok(
            captions,
            max_length=tok.model_max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(models.device)
        for tok in models.tokenizers
    ]
    if models.family == "sd":
        return models.text_encoders[0](ids[0], return_dict=False)[0], None
    hidden, pooled = [], None
    for te, te_ids in zip(models.text_encoders, ids, strict=True):
        out = te(te_ids, output_hidden_states=True, return_dict=False)
        pooled = out[0]
        hidden.append(out[-1][-2])
    return torch.cat(hidden, dim=-1), pooled


def _sdxl_time_ids(batch: dict, pixel_values: torch.Tensor, device) -> torch.Tensor:
    target = tuple(pixel_values.shape[-2:])
    rows = [
        [*orig, *crop, *target]
        for orig, crop in zip(batch["original_sizes"], batch["crop_top_lefts"], strict=True)
    ]
    return torch.tensor(rows, dtype=torch.float32, device=device)


def compute_loss(
    models: LoraModels, batch: dict, config: LoraTrainingConfig, generator: torch.Generator
) -> torch.Tensor:
    """Noise-prediction loss of one batch (the diffusers example's forward pass)."""
    autocast = (
        torch.autocast(models.device.type, dtype=models.autocast_dtype)
        if models.autocast_dtype is not None
        else contextlib.nullcontext()
    )
    with autocast:
        pixel_values = batch["pixel_values"].to(models.device, dtype=models.vae.dtype)
        dist = models.vae.encode(pixel_values).latent_dist
        latents = dist.sample(generator=generator) * models.vae.config.scaling_factor
        latents = latents.to(models.weight_dtype)
        noise = torch.randn(
            latents.shape, generator=generator, device=latents.device, dtype=latents.dtype
        )
        if config.noise_offset:
            shape = (latents.shape[0], latents.shape[1], 1, 1)
            noise += config.noise_offset * torch.randn(
                shape, generator=generator, device=latents.device, dtype=latents.dtype
            )
        scheduler = models.noise_scheduler
        bsz = latents.shape[0]
        timesteps = torch.randint(
            0,
            scheduler.config.num_train_timesteps,
            (bsz,),
            generator=generator,
            device=generator.device,
        ).to(latents.device, dtype=torch.long)
        noisy_latents = scheduler.add_noise(latents, noise, timesteps)
        encoder_hidden_states, pooled = encode_captions(models, batch["captions"])
        extra = {}
        if models.family == "sdxl":
            time_ids = _sdxl_time_ids(batch, pixel_values, latents.device)
            extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
        if scheduler.config.prediction_type == "epsilon":
            target = noise
        elif scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(latents, noise, timesteps)
        else:
            raise ValueError(f"unknown prediction type {scheduler.config.prediction_type}")
        model_pred = models.unet(
            noisy_latents, timesteps, encoder_hidden_states, return_dict=False, **extra
        )[0]
    if config.snr_gamma is None:
        return F.mse_loss(model_pred.float(), target.float(), reduction="mean")
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    weights = torch.clamp(snr, max=config.snr_gamma)
    weights = weights / (snr + 1 if scheduler.config.prediction_type == "v_prediction" else snr)
    loss = F.mse_loss(model_pred.float(), target.float(), reduction="none")
    return (loss.mean(dim=list(range(1, loss.ndim))) * weights).mean()


class Optimization:
    """AdamW + diffusers LR schedule + accumulation, clipping and (fp16) loss scaling."""

    def __init__(self, models: LoraModels, config: LoraTrainingConfig, total_steps: int):
        from diffusers.optimization import get_scheduler

        self.params = models.params
        self.config = config
        self.optimizer = torch.optim.AdamW(
            self.params,
            lr=config.learning_rate,
            betas=(config.adam_beta1, config.adam_beta2),
            weight_decay=config.adam_weight_decay,
            eps=config.adam_epsilon,
        )
        self.lr_scheduler = get_scheduler(
            config.lr_scheduler,
            optimizer=self.optimizer,
            num_warmup_steps=config.lr_warmup_steps,
            num_training_steps=total_steps,
        )
        fp16 = models.autocast_dtype == torch.float16
        self.scaler = torch.amp.GradScaler(models.device.type) if fp16 else None

    def backward(self, loss: torch.Tensor) -> None:
        scaled = loss / self.config.gradient_accumulation_steps
        (self.scaler.scale(scaled) if self.scaler else scaled).backward()

    def step(self) -> None:
        """Clip, update, advance the LR schedule, clear gradients (one optimisation step)."""
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    @property
    def lr(self) -> float:
        return float(self.lr_scheduler.get_last_lr()[0])


def save_lora(models: LoraModels, output_dir: Path) -> Path:
    """Write ``pytorch_lora_weights.safetensors`` in diffusers format (``load_lora_weights``)."""
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft.utils import get_peft_model_state_dict

    _move(models.unet, models.device, torch.float32)
    kwargs = {
        "unet_lora_layers": convert_state_dict_to_diffusers(get_peft_model_state_dict(models.unet)),
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
