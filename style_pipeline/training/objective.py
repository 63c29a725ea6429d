"""The training objective of one batch and the optimiser that applies it.

``compute_loss`` is the forward pass of diffusers' ``train_text_to_image_lora.py``:
latents from the frozen VAE, seeded noise and timesteps, noise-prediction MSE (optionally
Min-SNR weighted), SD and SDXL conditioning. A batch brings either pixels (encoded here)
or cached VAE posteriors (``moments``, sampled here with the same generator), and either
captions (encoded here) or cached text states (``hidden``/``pooled``). ``Optimization`` is
AdamW, a diffusers LR schedule, gradient accumulation, clipping and fp16 loss scaling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.training.lora_models import LoraModels, autocast_context
from style_pipeline.training.loss_reduction import reduce_loss


def encode_captions(models: LoraModels, captions: list[str]):
    """Text conditioning: SD -> last hidden state; SDXL -> both penultimate states + pooled;
    FLUX -> T5's last hidden state + CLIP's pooled output."""
    if models.family == "flux":
        from style_pipeline.training.flow_matching import encode_flux_captions

        return encode_flux_captions(models, captions)
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


def _sdxl_time_ids(batch: dict, device) -> torch.Tensor:
    target = tuple(batch["target_size"])
    rows = [
        [*orig, *crop, *target]
        for orig, crop in zip(batch["original_sizes"], batch["crop_top_lefts"], strict=True)
    ]
    return torch.tensor(rows, dtype=torch.float32, device=device)


def sample_latents(models: LoraModels, batch: dict, generator: torch.Generator) -> torch.Tensor:
    """Scaled latents: a sample of the VAE posterior of the batch's pixels, or of its
    cached posterior parameters (same draw from ``generator`` either way)."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    if "moments" in batch:
        dist = DiagonalGaussianDistribution(batch["moments"])
    else:
        pixel_values = batch["pixel_values"].to(
            models.device, dtype=models.vae.dtype, non_blocking=True
        )
        if models.device.type == "cuda":
            pixel_values = pixel_values.to(memory_format=torch.channels_last)
        dist = models.vae.encode(pixel_values).latent_dist
    latents = dist.sample(generator=generator) * models.vae.config["scaling_factor"]
    return latents.to(models.weight_dtype)


def compute_loss(
    models: LoraModels, batch: dict, config: LoraTrainingConfig, generator: torch.Generator
) -> torch.Tensor:
    """Noise-prediction loss of one batch (the diffusers example's forward pass)."""
    if models.family == "flux":  # flow matching (imported here: it builds on this module)
        from style_pipeline.training.flow_matching import flow_matching_loss

        return flow_matching_loss(models, batch, config, generator)
    with autocast_context(models):
        latents = sample_latents(models, batch, generator)
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
            scheduler.config["num_train_timesteps"],
            (bsz,),
            generator=generator,
            device=generator.device,
        ).to(latents.device, dtype=torch.long)
        # diffusers annotates timesteps as IntTensor; the long tensor is what it indexes with.
        noisy_latents = scheduler.add_noise(latents, noise, timesteps)  # type: ignore[arg-type]
        if "hidden" in batch:
            encoder_hidden_states, pooled = batch["hidden"], batch.get("pooled")
        else:
            encoder_hidden_states, pooled = encode_captions(models, batch["captions"])
        extra = {}
        if models.family == "sdxl":
            time_ids = _sdxl_time_ids(batch, latents.device)
            extra["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": time_ids}
        if scheduler.config["prediction_type"] == "epsilon":
            target = noise
        elif scheduler.config["prediction_type"] == "v_prediction":
            target = scheduler.get_velocity(latents, noise, timesteps)  # type: ignore[arg-type]
        else:
            raise ValueError(f"unknown prediction type {scheduler.config['prediction_type']}")
        model_pred = models.predict_noise(
            noisy_latents, timesteps, encoder_hidden_states, return_dict=False, **extra
        )[0]
    loss = F.mse_loss(model_pred.float(), target.float(), reduction="none")
    if config.snr_gamma is None:
        return reduce_loss(loss, batch, config)
    from diffusers.training_utils import compute_snr

    snr = compute_snr(scheduler, timesteps)
    weights = torch.clamp(snr, max=config.snr_gamma)
    weights = weights / (snr + 1 if scheduler.config["prediction_type"] == "v_prediction" else snr)
    return reduce_loss(loss, batch, config, weights)


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
            # One fused kernel for all LoRA tensors on CUDA (hundreds of small ones: the
            # per-tensor launches were overhead); the CPU path keeps its exact arithmetic.
            fused=models.device.type == "cuda" or None,
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
