"""Time LoRA training steps in this process: ours (latent/text cache on or off, compile)
and diffusers' ``train_text_to_image_lora.py`` loop, on random-init models, any device.

Callable from other benchmarks (``benchmarks/bench_training.py`` on CPU, a GPU bench)::

    from bench_training_steps import time_steps, time_peer_steps
    ours = time_steps("sd15", n_steps=20, batch_size=4, cache_latents=True,
                      mixed_precision="bf16", device="cuda")
    peer = time_peer_steps("sd15", n_steps=20, batch_size=4, mixed_precision="bf16")
    ratio = peer["median_s"] / ours["median_s"]

Both build the models with ``build_pipeline(size, seed=0)`` / ``build_components`` (same
weights), write the same smooth-noise images (``make_dataset``) and time each step after
``warmup`` untimed ones (``warmup`` >= 1), from the end of one step to the end of the next
(data loading included; the loss's ``.item()`` syncs the GPU, so CUDA steps are complete
when timed).
Filling the caches happens before the first step: it is reported as ``prepare_s``, not in
the steps. The peer is the SD (1.x) script; it has no SDXL variant here.
"""

from __future__ import annotations

import math
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RANK = {"tiny": 4, "tiny-sdxl": 4, "sd15": 16, "sdxl": 16}
RESOLUTION = {"tiny": 64, "tiny-sdxl": 64, "sd15": 512, "sdxl": 1024}


def make_dataset(folder: Path, resolution: int, count: int) -> Path:
    """``count`` smooth-noise RGB images at ``resolution``, built into a training folder."""
    import numpy as np
    from PIL import Image

    from style_pipeline.contracts.training import DatasetBuildConfig
    from style_pipeline.storage.store import Store
    from style_pipeline.training.dataset import build_training_dataset, download_dataset

    rng = np.random.default_rng(0)
    items = []
    for index in range(count):
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((resolution, resolution), Image.Resampling.BICUBIC)
        path = folder / "src" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        items.append((str(path), f"sks style picture {index}", f"img{index:03d}"))
    store = Store(folder / "store")
    config = DatasetBuildConfig(resolution=resolution)
    build_training_dataset(items, store, "2026-01-01", config)
    return download_dataset(store, "2026-01-01", folder / "dataset")


def _memory(device: str) -> dict:
    import torch

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    gpu = torch.cuda.max_memory_allocated() / 1024**3 if device == "cuda" else None
    return {"peak_rss_gb": round(rss, 3), "peak_gpu_gb": None if gpu is None else round(gpu, 3)}


def _summary(marks: list[tuple[float, float]], skip: int, batch_size: int) -> dict:
    """Step times from (wall, CPU) marks at step ends, the first ``skip`` intervals dropped."""
    wall = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)][skip:]
    cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)][skip:]
    median = statistics.median(wall) if wall else math.nan
    return {
        "step_seconds": wall,
        "step_cpu_seconds": cpu,
        "median_s": median,
        "min_s": min(wall) if wall else math.nan,
        "images_per_s": batch_size / median if wall else math.nan,
    }


def _dataset(data_dir: Path | None, tmp: Path, resolution: int, images: int) -> Path:
    return data_dir if data_dir is not None else make_dataset(tmp / "data", resolution, images)


def time_steps(
    size: str,
    n_steps: int = 10,
    batch_size: int = 1,
    *,
    cache_latents: bool = True,
    compile_unet: bool = False,
    mixed_precision: str = "no",
    device: str = "auto",
    warmup: int = 2,
    deterministic: bool = False,
    gradient_checkpointing: bool = False,
    resolution: int | None = None,
    images: int | None = None,
    data_dir: Path | None = None,
    store_dir: Path | None = None,
) -> dict:
    """Our loop (``train_pipeline``) for ``warmup + n_steps`` steps; per-step timings.

    ``cache_latents`` switches both caches (VAE latents and text states) on or off; with
    ``store_dir`` they persist there (a second call reads them: ``latents_encoded`` 0),
    else in a temporary store. ``size`` is a ``build_components`` size (tiny, tiny-sdxl,
    sd15). Returns timings (``step_seconds``, ``median_s``, ``min_s``, ``images_per_s``),
    ``prepare_s`` (cache fill before step 1), cache counts, losses, peak memory, notes.
    """
    import torch

    from style_pipeline.contracts.training import LoraTrainingConfig
    from style_pipeline.models.diffusion_configs import build_pipeline
    from style_pipeline.storage.store import Store
    from style_pipeline.training.train_loop import deterministic_mode, train_pipeline

    resolution = resolution or RESOLUTION[size]
    config = LoraTrainingConfig(
        name=f"bench-{size}",
        profile="tiny",
        model_family="sdxl" if size.endswith("sdxl") else "sd",
        resolution=resolution,
        rank=RANK[size],
        max_train_steps=warmup + n_steps,
        lr_scheduler="constant",
        train_batch_size=batch_size,
        mixed_precision=mixed_precision,  # type: ignore[arg-type]
        gradient_checkpointing=gradient_checkpointing,
        device=device,  # type: ignore[arg-type]
        deterministic=deterministic,
        cache_latents=cache_latents,
        cache_text_embeddings=cache_latents,
        compile_unet=compile_unet,
    )
    # On CUDA the random weights are drawn on the GPU: seconds instead of a minute for sdxl.
    init = "cuda" if device in ("cuda", "auto") and torch.cuda.is_available() else None
    pipe = build_pipeline(size, seed=0, init_device=init)  # type: ignore[arg-type]
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="time_steps_") as tmp:
        folder = _dataset(data_dir, Path(tmp), resolution, images or max(8, 4 * batch_size))
        store = Store(store_dir or Path(tmp) / "cache_store")
        marks: list[tuple[float, float]] = []
        started = time.perf_counter()
        with deterministic_mode(deterministic, config.seed):
            outcome = train_pipeline(
                pipe,
                folder,
                Path(tmp) / "out",
                config,
                progress=lambda _: marks.append((time.perf_counter(), time.process_time())),
                cache_store=store,
            )
    cache = outcome.cache
    used = [cache[k] for k in ("latents", "text") if cache[k]["used"]]
    return {
        "impl": "ours",
        "size": size,
        "device": outcome.device,
        "batch_size": batch_size,
        "resolution": resolution,
        "mixed_precision": outcome.mixed_precision,
        "cache_latents": cache_latents,
        "compile_unet": compile_unet,
        "deterministic": deterministic,
        "warmup": warmup,
        # marks are step ends only (the cache fill precedes step 1): the first interval
        # is step 2, so warm-up steps 1..warmup leave warmup - 1 intervals to drop
        **_summary(marks, max(warmup - 1, 0), batch_size),
        "first_step_s": marks[0][0] - started if marks else math.nan,
        "prepare_s": sum(c["seconds"] for c in used),
        "latents_encoded": cache["latents"].get("misses"),
        "latents_read": cache["latents"].get("hits"),
        "text_encoded": cache["text"].get("misses"),
        "text_read": cache["text"].get("hits"),
        "losses": list(outcome.losses),
        "final_loss": outcome.final_loss,
        "determinism": outcome.determinism,
        "notes": list(outcome.notes),
        **_memory(outcome.device),
    }


def time_peer_steps(
    size: str,
    n_steps: int = 10,
    batch_size: int = 1,
    *,
    mixed_precision: str = "no",
    warmup: int = 2,
    resolution: int | None = None,
    images: int | None = None,
    data_dir: Path | None = None,
) -> dict:
    """diffusers' ``train_text_to_image_lora.py`` loop (fetched at 58eb52c), reproduced
    line by line on the same models and images, on Accelerate's device (CUDA when there).

    Differences from the script, none timed differently: models built in memory (same
    weights as ours), trackers off, and when ``datasets`` is missing its imagefolder +
    ``with_transform`` is a torch Dataset with the same transforms on the same files.
    """
    import numpy as np
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import cast_training_params
    from peft import LoraConfig
    from torchvision import transforms
    from tqdm.auto import tqdm

    from style_pipeline.models.diffusion_configs import build_components

    if size not in ("tiny", "sd15"):
        raise ValueError(f"the peer loop is the SD 1.x script: no {size!r}")
    resolution = resolution or RESOLUTION[size]
    rank = RANK[size]
    seed, lr, max_grad_norm, max_train_steps = 0, 1e-4, 1.0, warmup + n_steps
    accelerator = Accelerator(gradient_accumulation_steps=1, mixed_precision=mixed_precision)
    set_seed(seed)
    init = "cuda" if torch.cuda.is_available() else None  # the same weights as ours
    parts = build_components(size, seed=0, init_device=init)  # type: ignore[arg-type]
    unet, vae, text_encoder, tokenizer = (
        parts[k] for k in ("unet", "vae", "text_encoder", "tokenizer")
    )
    noise_scheduler = DDPMScheduler.from_config(parts["scheduler"].config)
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    weight_dtype = torch.float32
    if accelerator.mixed_precision == "fp16":
        weight_dtype = torch.float16
    elif accelerator.mixed_precision == "bf16":
        weight_dtype = torch.bfloat16
    unet_lora_config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        init_lora_weights="gaussian",
        target_modules=["to_k", "to_q", "to_v", "to_out.0"],
    )
    unet.to(accelerator.device, dtype=weight_dtype)
    vae.to(accelerator.device, dtype=weight_dtype)
    text_encoder.to(accelerator.device, dtype=weight_dtype)
    unet.add_adapter(unet_lora_config)
    if mixed_precision == "fp16":
        cast_training_params(unet, dtype=torch.float32)
    lora_layers = filter(lambda p: p.requires_grad, unet.parameters())
    optimizer = torch.optim.AdamW(
        lora_layers, lr=lr, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-08
    )

    train_transforms = transforms.Compose(
        [
            transforms.Resize(resolution, interpolation=transforms.InterpolationMode.LANCZOS),
            transforms.CenterCrop(resolution),
            transforms.Lambda(lambda x: x),
            transforms.ToTensor(),
            transforms.Normalize([0.5], [0.5]),
        ]
    )

    def tokenize_captions(captions):
        inputs = tokenizer(
            captions,
            max_length=tokenizer.model_max_length,
            padding="max_length",
            truncation=True,
            return_tensors="pt",
        )
        return inputs.input_ids

    def collate_fn(examples):
        pixel_values = torch.stack([example["pixel_values"] for example in examples])
        pixel_values = pixel_values.to(memory_format=torch.contiguous_format).float()
        input_ids = torch.stack([example["input_ids"] for example in examples])
        return {"pixel_values": pixel_values, "input_ids": input_ids}

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory(prefix="time_peer_") as tmp:
        folder = _dataset(data_dir, Path(tmp), resolution, images or max(8, 4 * batch_size))
        train_dataset, data_source = _peer_dataset(folder, train_transforms, tokenize_captions)
        train_dataloader = torch.utils.data.DataLoader(
            train_dataset, shuffle=True, collate_fn=collate_fn, batch_size=batch_size,
            num_workers=0,
        )  # fmt: skip
        lr_scheduler = get_scheduler(
            "constant", optimizer=optimizer, num_warmup_steps=0, num_training_steps=max_train_steps
        )
        unet, optimizer, train_dataloader, lr_scheduler = accelerator.prepare(
            unet, optimizer, train_dataloader, lr_scheduler
        )
        num_update_steps_per_epoch = math.ceil(len(train_dataloader) / 1)
        num_train_epochs = math.ceil(max_train_steps / num_update_steps_per_epoch)
        progress_bar = tqdm(range(0, max_train_steps), file=open(os.devnull, "w"))  # noqa: SIM115
        global_step = 0
        losses: list[float] = []
        marks = [(time.perf_counter(), time.process_time())]
        for _epoch in range(num_train_epochs):
            unet.train()
            train_loss = 0.0
            for _step, batch in enumerate(train_dataloader):
                with accelerator.accumulate(unet):
                    latents = vae.encode(
                        batch["pixel_values"].to(dtype=weight_dtype)
                    ).latent_dist.sample()
                    latents = latents * vae.config.scaling_factor
                    noise = torch.randn_like(latents)
                    bsz = latents.shape[0]
                    timesteps = torch.randint(
                        0, noise_scheduler.config.num_train_timesteps, (bsz,), device=latents.device
                    )
                    timesteps = timesteps.long()
                    noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
                    encoder_hidden_states = text_encoder(batch["input_ids"], return_dict=False)[0]
                    target = noise
                    model_pred = unet(
                        noisy_latents, timesteps, encoder_hidden_states, return_dict=False
                    )[0]
                    loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
                    avg_loss = accelerator.gather(loss.repeat(batch_size)).mean()
                    train_loss += avg_loss.item() / 1
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        params_to_clip = lora_layers
                        accelerator.clip_grad_norm_(params_to_clip, max_grad_norm)
                    optimizer.step()
                    lr_scheduler.step()
                    optimizer.zero_grad()
                if accelerator.sync_gradients:
                    progress_bar.update(1)
                    global_step += 1
                    accelerator.log({"train_loss": train_loss}, step=global_step)
                    train_loss = 0.0
                logs = {"step_loss": loss.detach().item(), "lr": lr_scheduler.get_last_lr()[0]}
                progress_bar.set_postfix(**logs)
                losses.append(logs["step_loss"])
                marks.append((time.perf_counter(), time.process_time()))
                if global_step >= max_train_steps:
                    break
    device = accelerator.device.type
    return {
        "impl": "peer",
        "size": size,
        "device": device,
        "batch_size": batch_size,
        "resolution": resolution,
        "mixed_precision": mixed_precision,
        "warmup": warmup,
        **_summary(marks, warmup, batch_size),  # marks start before step 1
        "losses": losses,
        "final_loss": float(np.float64(losses[-1])),
        "peer_data": data_source,
        **_memory(device),
    }


def _peer_dataset(data_dir: Path, train_transforms, tokenize_captions):
    """The script's imagefolder dataset when ``datasets`` is installed, else the same in torch."""
    import json

    try:
        from datasets import load_dataset
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        dataset = load_dataset("imagefolder", data_files={"train": os.path.join(data_dir, "**")})

        def preprocess_train(examples):
            images = [image.convert("RGB") for image in examples["image"]]
            examples["pixel_values"] = [train_transforms(image) for image in images]
            examples["input_ids"] = tokenize_captions(examples["text"])
            return examples

        source = "the script's `datasets` imagefolder + `with_transform` (datasets installed)"
        return dataset["train"].with_transform(preprocess_train), source

    import torch
    from PIL import Image

    rows = [json.loads(line) for line in (data_dir / "metadata.jsonl").read_text().splitlines()]

    class Folder(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, index):
            image = Image.open(data_dir / rows[index]["file_name"]).convert("RGB")
            ids = tokenize_captions([rows[index]["text"]])[0]
            return {"pixel_values": train_transforms(image), "input_ids": ids}

    return Folder(), "torch Dataset, same transforms (datasets not installed)"
