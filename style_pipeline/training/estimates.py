"""Memory and time estimates for a LoRA run, logged before training starts.

Heuristics, not promises (expect +-50%). Inputs are parameter counts read from the
pipeline's safetensors headers (no weights loaded), the latent size and the batch. A
"unit" is ``unet_params x latent_pixels x batch / 1e12`` (SD 1.5 at 512 px, batch 1: 3.52);
for FLUX the transformer's parameters x its image tokens (latent pixels / 4, packed 2x2).

- memory = frozen weights x bytes per weight + LoRA params x 16 bytes (fp32 weight, grad,
  two AdamW moments) + ``ACT_GB_PER_UNIT x units`` of activations (halved for 16-bit,
  x0.35 with gradient checkpointing) + runtime overhead.
- step time = (overhead + ``CPU_SECONDS_PER_UNIT x units`` + encoding) CPU-seconds spread
  over the torch threads, per micro-batch. Encoding is the VAE (``VAE_CPU_SECONDS_PER_MP``
  per megapixel) and the text encoders (``TEXT_CPU_SECONDS`` per caption), scaled by their
  parameter counts; it leaves the steps when cached (``cache_latents`` with centre crops,
  ``cache_text_embeddings`` with frozen text encoders) and is paid once before step 1
  instead (``cache_fill_seconds``: a cold cache, every image and flip; a warm one is ~0).

CPU constants come from ``benchmarks/bench_training.py`` (fp32, batch 1, 2 threads):
SD-1.5-sized models at 512 px took ~58 CPU-s per step uncached (median), of which the VAE
encode ~16 CPU-s and the text encoder ~1 CPU-s, and peaked at ~9.0 GB RSS; the tiny models
~0.9 CPU-s and ~1.2 GB RSS, which is the runtime overhead of torch, diffusers and
transformers. The GPU constants assume ~0.3 s/step for SD 1.5 at 512 px (fp16) and ~1.2
s/step for SDXL at 1024 px (bf16, gradient checkpointing) on a 24 GB card uncached,
commonly reported figures rather than measurements here; FLUX.1-dev's ~2 s/step at 1024
px (bf16, gradient checkpointing, an 80 GB card) is such a figure too; fp32 on GPU is taken
as 2.5x slower, and the cached share of a GPU step as the CPU-measured share of the encoders.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from style_pipeline.contracts.training import LoraTrainingConfig


def is_logged_step(step: int, total: int, every: int) -> bool:
    """Whether a trainer logs its progress at ``step`` (1-based) of ``total``: the first
    step, every ``every``-th and the last. Every trainer uses this with the same
    ``training.log_every_n_steps``, so the LoRA and the caption fine-tune log alike."""
    return step == 1 or step == total or step % max(every, 1) == 0


# Calibration (see module docstring).
CPU_OVERHEAD_S = 0.9  # CPU-seconds per step that do not scale with the model
CPU_SECONDS_PER_UNIT = 11.4  # CPU-seconds per unit: UNet forward + backward + update
VAE_CPU_SECONDS_PER_MP = 61.0  # SD's VAE encoder (83.65M-param VAE), per megapixel
TEXT_CPU_SECONDS = 1.0  # SD's text encoder (123M params), per caption
SD_VAE_PARAMETERS, SD_TEXT_PARAMETERS = 83_653_863, 123_060_480
GPU_OVERHEAD_S = 0.02
GPU_SECONDS_PER_UNIT = {"sd": 0.3 / 3.52, "sdxl": 1.2 / 42.06, "flux": 2.0 / 48.75}
ACT_GB_PER_UNIT = 1.0  # fp32 activations kept for backward, per unit
RUNTIME_OVERHEAD_GB = {"cpu": 1.2, "cuda": 0.8}
# Used when the pipeline folder has no safetensors (e.g. not downloaded yet): parameter
# counts and LoRA parameters per rank (to_q/k/v/out.0) of the real architectures.
FALLBACK_PARAMETERS = {
    "sd": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sdxl": {
        "unet": 2_567_463_684,
        "vae": 83_653_863,
        "text_encoder": 123_060_480,
        "text_encoder_2": 694_659_840,
    },
}
FALLBACK_PARAMETERS["flux"] = {  # FLUX.1-dev: transformer, VAE, CLIP-L, T5-XXL encoder
    "transformer": 11_901_408_320,
    "vae": 83_819_683,
    "text_encoder": 123_060_480,
    "text_encoder_2": 4_762_310_656,
}
FALLBACK_LORA_PER_RANK = {"sd": 199_296, "sdxl": 1_451_520, "flux": 1_167_360}
COMPONENTS = ("unet", "transformer", "vae", "text_encoder", "text_encoder_2")
DENOISER = {"sd": "unet", "sdxl": "unet", "flux": "transformer"}  # where the LoRA goes
SIZES_ASSUMED = {"sd": "SD 1.5", "sdxl": "SDXL", "flux": "FLUX.1-dev"}


@dataclass(frozen=True)
class ResourceEstimate:
    device: str
    parameters: dict[str, int]
    lora_parameters: int
    latent_size: int
    memory_gb: float
    step_seconds: float
    total_steps: int
    total_seconds: float
    basis: str
    cached: tuple[str, ...] = ()  # "latents" and/or "text": encoders out of the steps
    cache_fill_seconds: float = 0.0  # encoding them once before step 1 (cold cache)

    def summary(self) -> str:
        cached = "+".join(self.cached) or "nothing"
        return (
            f"{self.device}: ~{self.memory_gb:.1f} GB peak, ~{self.step_seconds:.2f} s/step, "
            f"{self.total_steps} steps ~{self.total_seconds / 60:.1f} min "
            f"({'transformer' if 'transformer' in self.parameters else 'UNet'} "
            f"{self.parameters.get('unet', self.parameters.get('transformer', 0)) / 1e6:.1f}M "
            "params, "
            f"LoRA {self.lora_parameters / 1e6:.2f}M, latents {self.latent_size}px; "
            f"cached {cached}, filling a cold cache <= {self.cache_fill_seconds:.0f} s of the "
            f"total; {self.basis})"
        )

    def as_metadata(self) -> dict:
        return asdict(self)


def _safetensors_shapes(folder: Path) -> dict[str, list[int]]:
    from safetensors import safe_open

    shapes: dict[str, list[int]] = {}
    for file in sorted(folder.glob("*.safetensors")):
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():
                shapes[key] = list(fh.get_slice(key).get_shape())
    return shapes


def count_parameters(pipeline_dir: Path) -> dict[str, int]:
    """Parameters per component from safetensors headers; {} when there are none."""
    counts = {}
    for name in COMPONENTS:
        shapes = _safetensors_shapes(Path(pipeline_dir) / name)
        if shapes:
            counts[name] = sum(math.prod(s) for s in shapes.values())
    return counts


def lora_parameter_count(pipeline_dir: Path, config: LoraTrainingConfig) -> int:
    """rank x (in + out) for every UNet (FLUX: transformer) linear whose name ends with a
    target module."""
    shapes = _safetensors_shapes(Path(pipeline_dir) / DENOISER[config.model_family])
    total = 0
    for key, shape in shapes.items():
        module = key.removesuffix(".weight")
        if key.endswith(".weight") and len(shape) == 2:
            if any(module.endswith(f".{t}") for t in config.target_modules):
                total += config.rank * (shape[0] + shape[1])
    return total


def vae_scale_factor(pipeline_dir: Path) -> int:
    cfg = Path(pipeline_dir) / "vae" / "config.json"
    if not cfg.is_file():
        return 8
    return 2 ** (len(json.loads(cfg.read_text())["block_out_channels"]) - 1)


def estimate_resources(
    config: LoraTrainingConfig, pipeline_dir: Path, n_images: int, device: str | None = None
) -> ResourceEstimate:
    """Peak memory and time for ``config`` on ``pipeline_dir`` with ``n_images`` images."""
    device = device or ("cuda" if torch.cuda.is_available() and config.device != "cpu" else "cpu")
    params = count_parameters(pipeline_dir)
    basis = "parameter counts from safetensors headers"
    family = config.model_family
    lora = lora_parameter_count(pipeline_dir, config)
    denoiser = DENOISER[family]
    if denoiser not in params:
        params = dict(FALLBACK_PARAMETERS[family])
        lora = FALLBACK_LORA_PER_RANK[family] * config.rank
        basis = f"no safetensors found: {SIZES_ASSUMED[family]} sizes assumed"
    latent = config.resolution // vae_scale_factor(pipeline_dir)
    pixels = latent * latent // (4 if family == "flux" else 1)  # FLUX: packed 2x2 tokens
    units = params[denoiser] * pixels * config.train_batch_size / 1e12
    half = device == "cuda" and config.mixed_precision != "no"
    weight_bytes = 2 if half else 4
    activations = ACT_GB_PER_UNIT * 1e9 * units * (weight_bytes / 4)
    if config.gradient_checkpointing:
        activations *= 0.35
    memory = (sum(params.values()) * weight_bytes + lora * 16 + activations) / 1e9
    memory += RUNTIME_OVERHEAD_GB[device]
    vae_cpu, text_cpu = _encoder_cpu_seconds(config, params)
    cached = _cached_parts(config)
    encode_cpu = (0 if "latents" in cached else vae_cpu) + (0 if "text" in cached else text_cpu)
    unet_cpu = CPU_SECONDS_PER_UNIT * units
    if device == "cpu":
        threads = max(1, torch.get_num_threads())
        step = (CPU_OVERHEAD_S + unet_cpu + encode_cpu) / threads
        per_cpu_second = 1 / threads
    else:
        per_unit = GPU_SECONDS_PER_UNIT[config.model_family] * (1.0 if half else 2.5)
        # the reported GPU figures include encoding: keep the share the CPU runs measured
        uncached_compute = per_unit * units
        per_cpu_second = uncached_compute / (unet_cpu + vae_cpu + text_cpu)
        step = GPU_OVERHEAD_S + per_cpu_second * (unet_cpu + encode_cpu)
    step *= config.gradient_accumulation_steps
    per_epoch = math.ceil(
        math.ceil(n_images / config.train_batch_size) / config.gradient_accumulation_steps
    )
    total = config.max_train_steps or config.num_train_epochs * max(1, per_epoch)
    flips = 2 if config.random_flip else 1
    fill_cpu = (vae_cpu * flips if "latents" in cached else 0) + (
        text_cpu if "text" in cached else 0
    )
    fill = per_cpu_second * fill_cpu * n_images / config.train_batch_size
    return ResourceEstimate(
        device=device,
        parameters=params,
        lora_parameters=lora,
        latent_size=latent,
        memory_gb=round(memory, 3),
        step_seconds=round(step, 4),
        total_steps=total,
        total_seconds=round(step * total + fill, 2),
        basis=basis,
        cached=cached,
        cache_fill_seconds=round(fill, 2),
    )


def _cached_parts(config: LoraTrainingConfig) -> tuple[str, ...]:
    """Which encoders the loop will run once instead of every step (see ``feed.py``)."""
    parts = []
    if config.cache_latents and config.center_crop:
        parts.append("latents")
    if config.cache_text_embeddings and not config.train_text_encoder:
        parts.append("text")
    return tuple(parts)


def _encoder_cpu_seconds(config: LoraTrainingConfig, params: dict[str, int]) -> tuple[float, float]:
    """CPU-seconds of (VAE encode, text encoders) for one micro-batch, uncached."""
    megapixels = config.resolution**2 / 1e6 * config.train_batch_size
    vae = VAE_CPU_SECONDS_PER_MP * megapixels * params.get("vae", 0) / SD_VAE_PARAMETERS
    text_params = params.get("text_encoder", 0) + params.get("text_encoder_2", 0)
    text = TEXT_CPU_SECONDS * config.train_batch_size * text_params / SD_TEXT_PARAMETERS
    return vae, text
