"""CPU seconds per LoRA training step: ours vs diffusers' train_text_to_image_lora.py loop.

Both sides train the same randomly initialised models (``build_components(size, seed=0)``:
the tiny test config, or Stable Diffusion 1.5's UNet/VAE/text-encoder configs at 512 px,
i.e. 64x64 latents) on the same images, batch 1, fp32, same LoRA rank and targets. Each
implementation runs in its own subprocess (peak memory = that process's ``ru_maxrss``);
warm-up steps are dropped, the rest are timed one by one, data loading included.

The peer loop is ``examples/text_to_image/train_text_to_image_lora.py`` from
huggingface/diffusers (fetched at 58eb52c, Aug 2026) reproduced line by line:
Accelerator, ``set_seed``, LoRA via ``unet.add_adapter``, AdamW over the ``filter`` of
trainable params, ``get_scheduler``, ``accelerator.prepare``, ``accumulate``, ``gather``,
``backward``, clip, step. Differences (documented, not timed differently): the script
loads models with ``from_pretrained`` (here: in memory, same weights), trackers are off,
and when the ``datasets`` package is missing its imagefolder + ``with_transform`` is
replaced by a torch Dataset applying the same torchvision transforms to the same files.

Run: ``.venv/bin/python benchmarks/bench_training.py [--sizes tiny sd15] [--write-docs]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SETTINGS = {
    # size: (resolution, rank, images, warm-up steps, timed steps, runs per implementation)
    "tiny": (64, 4, 8, 2, 6, 3),
    "sd15": (512, 16, 4, 1, 2, 2),
}
SECTION = "## Training: LoRA step time"

from docs_section import write_section  # noqa: E402


def make_dataset(folder: Path, resolution: int, count: int) -> Path:
    """``count`` smooth-noise RGB images at ``resolution``, built into a training folder."""
    import numpy as np
    from PIL import Image

    from style_pipeline.contracts.training import DatasetBuildConfig
    from style_pipeline.storage.store import Store
    from style_pipeline.training.dataset import build_training_dataset

    rng = np.random.default_rng(0)
    items = []
    for index in range(count):
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((resolution, resolution), Image.Resampling.BICUBIC)
        path = folder / "src" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        items.append((str(path), f"sks style picture {index}", f"img{index:03d}"))
    config = DatasetBuildConfig(resolution=resolution)
    build_training_dataset(items, Store(folder / "store"), "bench", config)
    return folder / "store" / "training_dataset" / "bench"


def _components(size: str) -> dict:
    from style_pipeline.models.diffusion_configs import build_components

    return build_components(size, seed=0)


def worker_ours(size: str, data_dir: Path, warmup: int, steps: int) -> dict:
    """Our production loop (``train_pipeline``); per-step times from its progress callback."""
    from style_pipeline.contracts.training import LoraTrainingConfig
    from style_pipeline.models.diffusion_configs import build_pipeline
    from style_pipeline.training.train_loop import deterministic_mode, train_pipeline

    resolution, rank = SETTINGS[size][:2]
    config = LoraTrainingConfig(
        name=f"bench-{size}",
        profile="tiny",
        resolution=resolution,
        rank=rank,
        max_train_steps=warmup + steps,
        lr_scheduler="constant",
        device="cpu",
    )
    pipe = build_pipeline(size, seed=0)
    marks: list[tuple[float, float]] = [(time.perf_counter(), time.process_time())]
    with tempfile.TemporaryDirectory() as out, deterministic_mode(True, config.seed):
        outcome = train_pipeline(
            pipe,
            data_dir,
            Path(out),
            config,
            progress=lambda _: marks.append((time.perf_counter(), time.process_time())),
        )
    return {**_step_times(marks, warmup), "final_loss": outcome.final_loss}


def _step_times(marks: list[tuple[float, float]], warmup: int) -> dict:
    """Wall and process-CPU seconds of each step after the warm-up (marks at step ends)."""
    wall = [b[0] - a[0] for a, b in zip(marks, marks[1:], strict=False)]
    cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:], strict=False)]
    return {"step_seconds": wall[warmup:], "step_cpu_seconds": cpu[warmup:]}


def worker_peer(size: str, data_dir: Path, warmup: int, steps: int) -> dict:
    """The diffusers example's training loop, reproduced from the script (see module doc)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from diffusers import DDPMScheduler
    from diffusers.optimization import get_scheduler
    from peft import LoraConfig
    from torchvision import transforms
    from tqdm.auto import tqdm

    resolution, rank = SETTINGS[size][:2]
    seed, lr, max_grad_norm, max_train_steps = 0, 1e-4, 1.0, warmup + steps
    accelerator = Accelerator(gradient_accumulation_steps=1, mixed_precision="no")
    set_seed(seed)
    parts = _components(size)
    unet, vae, text_encoder, tokenizer = (
        parts[k] for k in ("unet", "vae", "text_encoder", "tokenizer")
    )
    noise_scheduler = DDPMScheduler.from_config(parts["scheduler"].config)
    unet.requires_grad_(False)
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    weight_dtype = torch.float32
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

    train_dataset, data_source = _peer_dataset(data_dir, train_transforms, tokenize_captions)

    def collate_fn(examples):
        pixel_values = torch.stack([example["pixel_values"] for example in examples])
        pixel_values = pixel_values.to(memory_format=torch.contiguous_format).float()
        input_ids = torch.stack([example["input_ids"] for example in examples])
        return {"pixel_values": pixel_values, "input_ids": input_ids}

    train_dataloader = torch.utils.data.DataLoader(
        train_dataset, shuffle=True, collate_fn=collate_fn, batch_size=1, num_workers=0
    )
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
    marks = [(time.perf_counter(), time.process_time())]
    for _epoch in range(num_train_epochs):
        unet.train()
        train_loss = 0.0
        for _step, batch in enumerate(train_dataloader):
            with accelerator.accumulate(unet):
                latents = vae.encode(  # noqa: E501 (verbatim)
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
                encoder_hidden_states = text_encoder(batch["input_ids"], return_dict=False)[0]  # noqa: E501 (verbatim)
                target = noise
                model_pred = unet(
                    noisy_latents, timesteps, encoder_hidden_states, return_dict=False
                )[0]
                loss = F.mse_loss(model_pred.float(), target.float(), reduction="mean")
                avg_loss = accelerator.gather(loss.repeat(1)).mean()
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
            marks.append((time.perf_counter(), time.process_time()))
            if global_step >= max_train_steps:
                break
    final = float(np.float64(loss.detach().item()))
    return {**_step_times(marks, warmup), "final_loss": final, "peer_data": data_source}


def _peer_dataset(data_dir: Path, train_transforms, tokenize_captions):
    """The script's imagefolder dataset when ``datasets`` is installed, else the same in torch."""
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


def run_worker(impl: str, size: str, data_dir: Path) -> dict:
    """One implementation in a fresh subprocess; adds its peak RSS."""
    warmup, steps = SETTINGS[size][3:5]
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out = Path(fh.name)
    cmd = [sys.executable, __file__, "--worker", impl, "--size", size, "--data", str(data_dir)]
    cmd += ["--warmup", str(warmup), "--steps", str(steps), "--out", str(out)]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "TQDM_DISABLE": "1"})
    result = json.loads(out.read_text())
    out.unlink()
    result.update(impl=impl, size=size, wall_s=time.perf_counter() - started)
    print(json.dumps({k: v for k, v in result.items() if k != "step_seconds"}), flush=True)
    return result


def summarise(results: list[dict]) -> dict:
    times = [t for r in results for t in r["step_seconds"]]
    cpu = [t for r in results for t in r["step_cpu_seconds"]]
    return {
        "cpu_median": statistics.median(cpu),
        "cpu_min": min(cpu),
        "median": statistics.median(times),
        "min": min(times),
        "n": len(times),
        "rss_gb": max(r["ru_maxrss_kb"] for r in results) / 1024**2,
        "runs": len(results),
        "final_loss": results[-1]["final_loss"],
        "peer_data": results[-1].get("peer_data", ""),
    }


def report(summary: dict[str, dict[str, dict]], extra: list[str]) -> str:
    import torch

    lines = [
        SECTION,
        "",
        f"Run on {platform.machine()} / Python {platform.python_version()}, torch "
        f"{torch.__version__}, {os.cpu_count()} CPU cores shared with other jobs, "
        f"{torch.get_num_threads()} torch threads, no GPU, fp32, batch 1, by "
        "`.venv/bin/python benchmarks/bench_training.py --write-docs`. Each implementation "
        "ran in its own subprocess on the same seeded random weights and the same images; "
        "warm-up steps dropped, every later step timed (data loading included).",
        "",
        "| model | implementation | steps timed | CPU s/step median | CPU s/step min "
        "| wall s/step median | wall s/step min | ours / peer (CPU median) | peak RSS GiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for size, by_impl in summary.items():
        peer = by_impl["peer"]["cpu_median"]
        for impl in ("ours", "peer"):
            s = by_impl[impl]
            ratio = f"{s['cpu_median'] / peer:.3f}" if impl == "ours" else "1"
            name = "ours (`train_pipeline`)" if impl == "ours" else "diffusers example loop"
            lines.append(
                f"| {size} | {name} | {s['n']} ({s['runs']} runs) | {s['cpu_median']:.3f} | "
                f"{s['cpu_min']:.3f} | {s['median']:.3f} | {s['min']:.3f} | {ratio} | "
                f"{s['rss_gb']:.2f} |"
            )
    verdicts = []
    for size, by_impl in summary.items():
        ratio = by_impl["ours"]["cpu_median"] / by_impl["peer"]["cpu_median"]
        verdicts.append(f"{size} {ratio:.3f} ({'met' if ratio <= 1.10 else 'NOT met'})")
    goal = "Goal, ours <= 1.10 x peer on the CPU median: " + ", ".join(verdicts) + "."
    return "\n".join(lines + ["", goal, ""] + extra) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "sd15"], choices=list(SETTINGS))
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--worker", choices=["ours", "peer"])
    parser.add_argument("--size", choices=list(SETTINGS))
    parser.add_argument("--data", type=Path)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.worker:
        fn = worker_ours if args.worker == "ours" else worker_peer
        result = fn(args.size, args.data, args.warmup, args.steps)
        result["ru_maxrss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        args.out.write_text(json.dumps(result))
        return

    summary: dict[str, dict[str, dict]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_training_") as tmp:
        for size in args.sizes:
            resolution, _, count, _, _, runs = SETTINGS[size]
            data_dir = make_dataset(Path(tmp) / size, resolution, count)
            results: dict[str, list[dict]] = {"ours": [], "peer": []}
            order = ["peer", "ours", "ours", "peer"] * runs
            for impl in order[: 2 * runs]:
                results[impl].append(run_worker(impl, size, data_dir))
            summary[size] = {impl: summarise(rs) for impl, rs in results.items()}
            print(size, json.dumps(summary[size], indent=1), flush=True)
    load = os.getloadavg()
    peer_data = next(iter(summary.values()))["peer"]["peer_data"]
    extra = [
        "CPU s/step is the process CPU time (all threads) between the ends of consecutive "
        "steps; the goal (ours within 10% of the peer) is judged on its median, because the "
        "2 cores were shared with other jobs and wall times swing with their load "
        f"(load average at the end: {load[0]:.1f} over 1 min, {load[1]:.1f} over 5 min). "
        "Peak RSS is the worker's `ru_maxrss` and includes building the random-init models.",
        "",
        f"Peer data path: {peer_data}. Ours runs in deterministic mode (seeded generators, "
        "`torch.use_deterministic_algorithms(True)`), reads the training folder with "
        "aspect-ratio buckets (all images are square here, so one 512x512 / 64x64 bucket) "
        "and clips the LoRA gradients to norm 1.0. The peer's `params_to_clip = lora_layers` "
        "reuses the `filter` object the optimizer already consumed, so its clipping clips "
        "nothing; its noise and timesteps come from the global RNG, ours from a seeded "
        "generator, so the losses differ (final losses: "
        + ", ".join(
            f"{size} ours {s['ours']['final_loss']:.4f} / peer {s['peer']['final_loss']:.4f}"
            for size, s in summary.items()
        )
        + ").",
        "",
        "The CPU time and memory constants of `style_pipeline/training/estimates.py` are "
        "calibrated on these runs.",
    ]
    text = report(summary, extra)
    print(text)
    if args.write_docs:
        write_section(SECTION, text)


if __name__ == "__main__":
    main()
