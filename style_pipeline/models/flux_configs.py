"""FLUX.1 model configs and a random-init tiny FluxPipeline builder (nothing is downloaded).

``tiny-flux`` follows diffusers' FLUX pipeline test fixtures (a one double-stream plus one
single-stream block transformer, 2 heads of 16, RoPE axes 4+4+8, a 32-wide CLIP) with what
FLUX.1 has and those fixtures shrink away: a 16-channel VAE with FLUX's ``shift_factor`` and
``scaling_factor`` (so latents pack 2x2 into 64-wide tokens, as in the real model), the
guidance embedding of FLUX.1-dev (``guidance_embeds``), and FLUX.1-dev's flow-matching
scheduler config. The T5 tokenizer is a character-level Unigram model built offline with
``tokenizers`` (wrapped in transformers' T5 tokenizer); CLIP's is the byte-level one of
``diffusion_configs``. Built in about a second on CPU.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import torch

from style_pipeline.models.diffusion_configs import (
    TINY_TEXT_CONFIG,
    TINY_VAE_CONFIG,
    _text_config,
    build_tiny_tokenizer,
)

T5_MAX_LENGTH = 512  # FLUX.1's T5 tokenizer model_max_length (the pipeline's cap too)
# hf FLUX.1-dev transformer/config.json, shrunk as in diffusers' tests/pipelines/flux.
TINY_FLUX_TRANSFORMER_CONFIG: dict = {
    "patch_size": 1,
    "in_channels": 64,  # 16 latent channels x the 2x2 packing
    "num_layers": 1,
    "num_single_layers": 1,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": 32,  # T5 d_model
    "pooled_projection_dim": 32,  # CLIP hidden size (pooler_output)
    "guidance_embeds": True,  # the dev kind (schnell has none)
    "axes_dims_rope": (4, 4, 8),  # sums to attention_head_dim
}
# FLUX.1's VAE: 16 latent channels, no quant convs, latents shifted then scaled.
TINY_FLUX_VAE_CONFIG: dict = {
    **TINY_VAE_CONFIG,
    "latent_channels": 16,
    "shift_factor": 0.1159,
    "scaling_factor": 0.3611,
    "use_quant_conv": False,
    "use_post_quant_conv": False,
}
TINY_T5_CONFIG: dict = {
    "d_model": 32,
    "d_kv": 8,
    "d_ff": 37,
    "num_layers": 2,
    "num_heads": 4,
    "relative_attention_num_buckets": 8,
    "feed_forward_proj": "gated-gelu",  # T5 v1.1 (FLUX's T5-XXL)
}
# hf FLUX.1-dev scheduler/scheduler_config.json (schnell: shift 1.0, no dynamic shifting).
FLUX_DEV_SCHEDULER_CONFIG: dict = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
# Pieces of the tiny T5 vocabulary after <pad>=0, </s>=1, <unk>=2: every printable ASCII
# character, alone and word-initial (Metaspace "▁"), with equal scores.
T5_PIECES = tuple(piece for c in string.printable.strip() for piece in (c, "▁" + c)) + ("▁",)
TINY_FLUX_CONFIGS: dict[str, dict] = {
    "transformer": TINY_FLUX_TRANSFORMER_CONFIG,
    "vae": TINY_FLUX_VAE_CONFIG,
    "text_encoder": TINY_TEXT_CONFIG,
    "text_encoder_2": TINY_T5_CONFIG,
    "scheduler": FLUX_DEV_SCHEDULER_CONFIG,
    "tokenizer_2": {"pieces": list(T5_PIECES), "model_max_length": T5_MAX_LENGTH},
}


def build_tiny_t5_tokenizer():
    """A T5 tokenizer (Unigram, character pieces) built offline: any ASCII text tokenizes."""
    from transformers import T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    vocab += [(piece, -1.0) for piece in T5_PIECES]
    return T5TokenizerFast(vocab=vocab, extra_ids=0, model_max_length=T5_MAX_LENGTH)


def build_flux_components(seed: int = 0) -> dict:
    """Random-init tiny FLUX.1 components (keyword arguments of ``FluxPipeline``); each
    model is created right after ``torch.manual_seed(seed)`` (T5 after ``seed + 1``)."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel
    from transformers import CLIPTextModel, T5Config, T5EncoderModel

    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tiny_tokenizer(Path(tmp))
    tokenizer_2 = build_tiny_t5_tokenizer()
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(**TINY_FLUX_TRANSFORMER_CONFIG)
    torch.manual_seed(seed)
    vae = AutoencoderKL(**TINY_FLUX_VAE_CONFIG)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_text_config(TINY_TEXT_CONFIG, tokenizer))
    torch.manual_seed(seed + 1)
    t5_config = T5Config(
        vocab_size=len(tokenizer_2),
        pad_token_id=tokenizer_2.pad_token_id,
        eos_token_id=tokenizer_2.eos_token_id,
        **TINY_T5_CONFIG,
    )
    return {
        "transformer": transformer,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "text_encoder_2": T5EncoderModel(t5_config),
        "tokenizer_2": tokenizer_2,
        "scheduler": FlowMatchEulerDiscreteScheduler(**FLUX_DEV_SCHEDULER_CONFIG),
    }


def build_flux_pipeline(seed: int = 0):
    """A ``FluxPipeline`` around :func:`build_flux_components` (nothing saved)."""
    from diffusers import FluxPipeline

    return FluxPipeline(**build_flux_components(seed))
