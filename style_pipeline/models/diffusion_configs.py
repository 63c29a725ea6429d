"""Model configs and random-init builders for the diffusion stack (no weights are downloaded).

``tiny`` follows diffusers' own LoRA test fixtures (hf-internal-testing sizes: a 2-level
UNet, a VAE that downsamples 2x so 64 px images give 32x32 latents, a 32-wide CLIP text
encoder); ``tiny-sdxl`` follows diffusers' SDXL pipeline test (two text encoders, pooled
embeds, size/crop time ids); ``sd15`` and ``sdxl`` are Stable Diffusion 1.5's and SDXL
1.0's architectures with random weights, for benchmarks (``sdxl``: a 2.6B-parameter UNet,
two text encoders, 1024 px). The tokenizer is a byte-level CLIP BPE with an empty merge list,
written to ``vocab.json`` / ``merges.txt`` offline.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal

import torch

ComponentSize = Literal["tiny", "tiny-sdxl", "sd15", "sdxl"]
TOKENIZER_MAX_LENGTH = 77
TINY_RESOLUTION = 64
SD15_RESOLUTION = 512
SDXL_RESOLUTION = 1024

TINY_UNET_CONFIG: dict = {
    "block_out_channels": (32, 64),
    "layers_per_block": 2,
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "cross_attention_dim": 32,
}
TINY_VAE_CONFIG: dict = {
    "block_out_channels": (32, 64),
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D", "DownEncoderBlock2D"),
    "up_block_types": ("UpDecoderBlock2D", "UpDecoderBlock2D"),
    "latent_channels": 4,
    "sample_size": 64,
}
TINY_TEXT_CONFIG: dict = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_attention_heads": 4,
    "num_hidden_layers": 5,
    "projection_dim": 32,
    "max_position_embeddings": TOKENIZER_MAX_LENGTH,
}
# diffusers tests/pipelines/stable_diffusion_xl get_dummy_components(): 6 time ids x 8 + 32.
TINY_SDXL_UNET_CONFIG: dict = {
    "block_out_channels": (2, 4),
    "layers_per_block": 2,
    "sample_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
    "attention_head_dim": (2, 4),
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 8,
    "transformer_layers_per_block": (1, 2),
    "projection_class_embeddings_input_dim": 80,
    "cross_attention_dim": 64,
    "norm_num_groups": 1,
}
# Stable Diffusion 1.5's unet/vae/text_encoder config.json values.
SD15_UNET_CONFIG: dict = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": (
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D",
        "DownBlock2D",
    ),
    "up_block_types": (
        "UpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D",
    ),
    "cross_attention_dim": 768,
    "attention_head_dim": 8,
}
SD15_VAE_CONFIG: dict = {
    "block_out_channels": (128, 256, 512, 512),
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "latent_channels": 4,
    "layers_per_block": 2,
    "sample_size": 512,
}
SD15_TEXT_CONFIG: dict = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "projection_dim": 768,
    "max_position_embeddings": TOKENIZER_MAX_LENGTH,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
}
# Stable Diffusion XL 1.0 base's unet/vae/text_encoder/text_encoder_2 config.json values.
SDXL_UNET_CONFIG: dict = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "attention_head_dim": (5, 10, 20),
    "transformer_layers_per_block": (1, 2, 10),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}
SDXL_VAE_CONFIG: dict = {
    **SD15_VAE_CONFIG,
    "sample_size": 1024,
    "scaling_factor": 0.13025,
    "force_upcast": True,
}
SDXL_TEXT_2_CONFIG: dict = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_attention_heads": 20,
    "num_hidden_layers": 32,
    "projection_dim": 1280,
    "max_position_embeddings": TOKENIZER_MAX_LENGTH,
    "vocab_size": 49408,
    "hidden_act": "gelu",
}
CONFIGS: dict[str, tuple[dict, dict, dict]] = {
    "tiny": (TINY_UNET_CONFIG, TINY_VAE_CONFIG, TINY_TEXT_CONFIG),
    "tiny-sdxl": (TINY_SDXL_UNET_CONFIG, TINY_VAE_CONFIG, TINY_TEXT_CONFIG),
    "sd15": (SD15_UNET_CONFIG, SD15_VAE_CONFIG, SD15_TEXT_CONFIG),
    "sdxl": (SDXL_UNET_CONFIG, SDXL_VAE_CONFIG, SD15_TEXT_CONFIG),
}
# The second (pooled, projected) text encoder of the SDXL sizes.
SECOND_TEXT_CONFIGS: dict[str, dict] = {
    "tiny-sdxl": TINY_TEXT_CONFIG,
    "sdxl": SDXL_TEXT_2_CONFIG,
}


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte-level alphabet: every byte maps to one printable unicode character."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def write_tiny_tokenizer_files(directory: Path) -> Path:
    """Write a byte-level CLIP vocabulary without merges (514 tokens) and an empty merges file.

    Same layout as CLIP's real vocab (bytes, bytes + ``</w>``, then the special tokens), so
    any text tokenizes, one token per byte.
    """
    directory.mkdir(parents=True, exist_ok=True)
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    return directory


def build_tiny_tokenizer(directory: Path):
    """A CLIPTokenizer built offline from :func:`write_tiny_tokenizer_files`."""
    from transformers import CLIPTokenizer

    write_tiny_tokenizer_files(directory)
    return CLIPTokenizer.from_pretrained(directory, model_max_length=TOKENIZER_MAX_LENGTH)


def _text_config(base: dict, tokenizer):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **{"vocab_size": len(tokenizer), **base},
    )


def _scheduler():
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        num_train_timesteps=1000,
    )


def build_components(size: ComponentSize, seed: int = 0, init_device: str | None = None) -> dict:
    """Random-init pipeline components of ``size`` (keyword arguments of the pipeline class).

    Each model is created right after ``torch.manual_seed(seed)``, so the weights depend on
    the seed only (and on ``init_device``: ``"cuda"`` initialises on the GPU, seconds instead
    of a minute for ``sdxl``'s 3.4B parameters, with the GPU's random stream).
    """
    if init_device is not None:
        with torch.device(init_device):
            return build_components(size, seed)
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    if size not in CONFIGS:
        raise ValueError(f"unknown component size {size!r}: {', '.join(CONFIGS)}")
    unet_cfg, vae_cfg, text_cfg = CONFIGS[size]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tiny_tokenizer(Path(tmp))
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**unet_cfg)
    torch.manual_seed(seed)
    vae = AutoencoderKL(**vae_cfg)
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(_text_config(text_cfg, tokenizer))
    parts = {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "tokenizer": tokenizer,
        "scheduler": _scheduler(),
    }
    if size in SECOND_TEXT_CONFIGS:
        torch.manual_seed(seed + 1)
        second = _text_config(SECOND_TEXT_CONFIGS[size], tokenizer)
        parts["text_encoder_2"] = CLIPTextModelWithProjection(second)
        parts["tokenizer_2"] = tokenizer
    return parts


def build_pipeline(size: ComponentSize, seed: int = 0, init_device: str | None = None):
    """A StableDiffusion(XL)Pipeline around :func:`build_components` (nothing saved)."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    parts = build_components(size, seed, init_device)
    if size in SECOND_TEXT_CONFIGS:
        return StableDiffusionXLPipeline(**parts, add_watermarker=False)
    return StableDiffusionPipeline(
        **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
