"""The flow-matching objective of FLUX.1 LoRA training (rectified flow, velocity target).

The forward pass of diffusers' ``examples/dreambooth/train_dreambooth_lora_flux.py``:

- latents: a sample of the VAE posterior (of the batch's pixels, or of its cached
  posterior parameters), shifted and scaled, ``(x - shift_factor) * scaling_factor``;
- timesteps: ``u`` from ``compute_density_for_timestep_sampling`` (``weighting_scheme``
  none/logit_normal/mode), index ``u x num_train_timesteps`` into the scheduler's initial
  timesteps and sigmas (the scheduler copy in ``LoraModels``, never ``set_timesteps``-ed);
- ``noisy = (1 - sigma) x + sigma noise``, target ``noise - x``;
- the transformer sees the noisy latents packed 2x2 into tokens (``FluxPipeline._pack_latents``)
  with their position ids, T5's hidden states with all-zero text ids, CLIP's pooled output,
  ``timestep / 1000`` and, when it has a guidance embedding (FLUX.1-dev), ``guidance_scale``;
- its prediction is unpacked back to ``(B, C, h, w)`` and the squared error weighted by
  ``compute_loss_weighting_for_sd3`` goes through ``loss_reduction.reduce_loss`` (masked loss,
  regularization weight), as the SD objective's does.

Every random draw (posterior sample, noise, ``u``) comes from the passed generator, in that
order, so two runs on CPU give bit-identical weights.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.training.lora_models import LoraModels, autocast_context
from style_pipeline.training.loss_reduction import reduce_loss

# weighting schemes that weight the loss per example (the others shape the timestep density)
LOSS_WEIGHTED = ("sigma_sqrt", "cosmap")


def encode_flux_captions(
    models: LoraModels, captions: list[str]
) -> tuple[torch.Tensor, torch.Tensor]:
    """(T5 last hidden state ``(B, max_sequence_length, d)``, CLIP pooled output ``(B, w)``),
    tokenized as ``FluxPipeline.encode_prompt`` does (padded to the maximum length)."""
    clip, t5 = models.text_encoders
    clip_tokenizer, t5_tokenizer = models.tokenizers
    lengths = (clip_tokenizer.model_max_length, models.max_sequence_length)
    clip_ids, t5_ids = (
        tok(
            captions, max_length=length, padding="max_length", truncation=True,
            return_tensors="pt",
        ).input_ids.to(models.device)
        for tok, length in zip((clip_tokenizer, t5_tokenizer), lengths, strict=True)
    )  # fmt: skip
    pooled = clip(clip_ids, output_hidden_states=False).pooler_output
    hidden = t5(t5_ids, output_hidden_states=False)[0]
    return hidden, pooled


def flux_latents(models: LoraModels, batch: dict, generator: torch.Generator) -> torch.Tensor:
    """``(z - shift_factor) * scaling_factor`` for a posterior sample ``z`` of the batch."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    if "moments" in batch:
        dist = DiagonalGaussianDistribution(batch["moments"])
    else:
        pixels = batch["pixel_values"].to(models.device, dtype=models.vae.dtype, non_blocking=True)
        dist = models.vae.encode(pixels).latent_dist
    vae_config = models.vae.config
    shift = vae_config.get("shift_factor") or 0.0
    latents = (dist.sample(generator=generator) - shift) * vae_config["scaling_factor"]
    return latents.to(models.weight_dtype)


def sample_sigmas(
    models: LoraModels, config: LoraTrainingConfig, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(timesteps, sigmas) of ``batch_size`` examples, drawn by ``config.weighting_scheme``."""
    from diffusers.training_utils import compute_density_for_timestep_sampling

    scheduler = models.noise_scheduler
    u = compute_density_for_timestep_sampling(
        weighting_scheme=config.weighting_scheme,
        batch_size=batch_size,
        logit_mean=config.logit_mean,
        logit_std=config.logit_std,
        mode_scale=config.mode_scale,
        device=generator.device,
        generator=generator,
    )
    steps = scheduler.config["num_train_timesteps"]
    # sigmoid(normal) can round to 1.0 and "mode" leaves [0, 1) for large scales
    indices = (u * steps).long().clamp(0, steps - 1).cpu()
    return scheduler.timesteps[indices], scheduler.sigmas[indices]


def flow_matching_loss(
    models: LoraModels, batch: dict, config: LoraTrainingConfig, generator: torch.Generator
) -> torch.Tensor:
    """Flow-matching loss of one batch (see the module docstring)."""
    from diffusers import FluxPipeline
    from diffusers.training_utils import compute_loss_weighting_for_sd3

    with autocast_context(models):
        latents = flux_latents(models, batch, generator)
        noise = torch.randn(
            latents.shape, generator=generator, device=latents.device, dtype=latents.dtype
        )
        bsz, channels, height, width = latents.shape
        timesteps, sigmas = sample_sigmas(models, config, bsz, generator)
        timesteps = timesteps.to(latents.device)
        sigmas = sigmas.to(latents.device, dtype=latents.dtype).view(bsz, 1, 1, 1)
        noisy = (1.0 - sigmas) * latents + sigmas * noise
        packed = FluxPipeline._pack_latents(noisy, bsz, channels, height, width)
        image_ids = FluxPipeline._prepare_latent_image_ids(
            bsz, height // 2, width // 2, latents.device, latents.dtype
        )
        if "hidden" in batch:
            hidden, pooled = batch["hidden"], batch["pooled"]
        else:
            hidden, pooled = encode_flux_captions(models, batch["captions"])
        text_ids = torch.zeros(hidden.shape[1], 3, device=latents.device, dtype=latents.dtype)
        guidance = None
        if cast("dict[str, Any]", models.unet.config)["guidance_embeds"]:  # a FrozenDict
            guidance = torch.full(
                (bsz,), config.guidance_scale, device=latents.device, dtype=torch.float32
            )
        prediction = models.predict_noise(
            hidden_states=packed,
            timestep=timesteps / 1000,
            guidance=guidance,
            pooled_projections=pooled,
            encoder_hidden_states=hidden,
            txt_ids=text_ids,
            img_ids=image_ids,
            return_dict=False,
        )[0]
        factor = 2 ** (len(models.vae.config["block_out_channels"]) - 1)
        prediction = FluxPipeline._unpack_latents(
            prediction, height * factor, width * factor, factor
        )
    target = noise - latents
    per_element = (prediction.float() - target.float()) ** 2
    weights = None
    if config.weighting_scheme in LOSS_WEIGHTED:
        weights = compute_loss_weighting_for_sd3(config.weighting_scheme, sigmas.flatten())
    return reduce_loss(per_element, batch, config, weights)
