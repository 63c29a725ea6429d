"""One GPU benchmark: CLIP embeddings and LoRA training steps, ours beside the peer recipes.

On a CUDA machine, in one run (aim: under 8 minutes on one H200):

- **Embeddings** (``bench_embeddings.measure_embedding_throughput``): images/s including
  the JPEG read + decode from a Store of 640x360 files, for ViT-B-32 and ViT-L-14 with
  random weights, fp32 and bf16: ``ours`` (``embed_refs``: decode threads, pinned memory,
  nvJPEG decode on the GPU), the ``dataloader`` recipe (torch DataLoader, 15 workers,
  batch 256) and ``forward`` (the model alone on ready tensors: the compute limit).
- **LoRA steps** (``bench_training_steps``): seconds per step at batch 1 and 4, bf16, for
  SD-1.5 size at 512 px and SDXL size at 1024 px: ours with the latent/text caches, ours
  without them, ours with caches and ``torch.compile``, and diffusers'
  ``train_text_to_image_lora.py`` loop (SD only: the script has no SDXL variant here).

Goals (issue 11, on an H200): embeddings >= 5,000 img/s (ViT-B-32) and >= 1,500 img/s
(ViT-L-14) including decode; LoRA steps at batch 4 at least 2x faster than the diffusers
loop with latents cached. Results go to JSON (``--json``) and the section
``## GPU: embeddings and LoRA steps`` of docs/benchmarks.md.

``--smoke`` runs the same code on the CPU with tiny models, a few images and steps (the
test suite runs it); it never writes the docs.

Usage::

    .venv/bin/python benchmarks/bench_gpu.py [--smoke] [--json out.json] [--no-docs]
        [--images 3000] [--steps 10] [--skip-training] [--skip-embeddings]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
for path in (ROOT, HERE):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

SECTION = "## GPU: embeddings and LoRA steps"
EMBED_GOALS = {"ViT-B-32": 5000.0, "ViT-L-14": 1500.0}
TRAIN_GOAL = 2.0  # diffusers loop / ours (caches on), batch 4


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def embedding_rows(smoke: bool, images: int, log) -> list[dict]:
    """One row per (model, precision): ours, the DataLoader recipe and the forward limit."""
    from bench_embeddings import jpeg_store, measure_embedding_throughput, random_open_clip

    device = _device()
    cpus = os.cpu_count() or 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_gpu_jpegs_") as tmp:
        store, refs = jpeg_store(Path(tmp), images)
        if smoke:
            from style_pipeline.contracts.models import ModelConfig
            from style_pipeline.models import load_model

            cases = [
                ("tiny", precision, load_model(ModelConfig(profile="tiny", precision=precision,
                                                           cache_dir=str(Path(tmp) / "m"))))
                for precision in ("fp32", "bf16")
            ]  # fmt: skip
        else:
            cases = [
                (name, precision, random_open_clip(name, device, precision))
                for name in ("ViT-B-32", "ViT-L-14")
                for precision in ("fp32", "bf16")
            ]
        for name, precision, loaded in cases:
            log(f"embeddings: {name} {precision} on {device}, {len(refs)} images")
            result = measure_embedding_throughput(
                loaded,
                store,
                refs,
                batch_size=16 if smoke else "auto",
                dataloader_workers=2 if smoke else min(15, max(1, cpus - 1)),
                dataloader_batch_size=16 if smoke else 256,
                recipes=("ours", "dataloader", "forward"),
                repeats=1,
                log=log,
            )
            rows.append({"arch": name, "requested_precision": precision, **result})
            del loaded
            _free(device)
    return rows


def training_rows(smoke: bool, steps: int, log) -> list[dict]:
    """Seconds per LoRA step: ours (caches on / off / + compile) and the diffusers loop."""
    from bench_training_steps import time_peer_steps, time_steps

    device = _device()
    precision = "bf16" if device == "cuda" else "no"
    sizes = ("tiny", "tiny-sdxl") if smoke else ("sd15", "sdxl")
    batches = (2,) if smoke else (1, 4)
    warmup = 1 if smoke else 3
    rows = []
    for size in sizes:
        for batch in batches:
            variants: list[tuple[str, dict]] = [
                ("ours, caches", {"cache_latents": True}),
                ("ours, no caches", {"cache_latents": False}),
            ]
            if device == "cuda":
                variants.append(("ours, caches + compile", {"cache_latents": True,
                                                            "compile_unet": True}))  # fmt: skip
            for label, options in variants:
                log(f"training: {size} batch {batch} {label}")
                result = time_steps(
                    size, steps, batch, mixed_precision=precision, device=device,
                    warmup=warmup, **options,
                )  # fmt: skip
                rows.append(_training_row(label, size, batch, result))
                _free(device)
            if not size.endswith("sdxl"):
                log(f"training: {size} batch {batch} diffusers loop")
                peer = time_peer_steps(size, steps, batch, mixed_precision=precision, warmup=warmup)
                rows.append(_training_row("diffusers train_text_to_image_lora.py", size,
                                          batch, peer))  # fmt: skip
                _free(device)
    return rows


def _training_row(label: str, size: str, batch: int, result: dict) -> dict:
    keep = ("median_s", "min_s", "images_per_s", "prepare_s", "peak_gpu_gb", "peak_rss_gb",
            "latents_encoded", "text_encoded", "final_loss", "determinism", "device",
            "mixed_precision", "resolution")  # fmt: skip
    return {"impl": label, "size": size, "batch_size": batch,
            **{k: result.get(k) for k in keep}}  # fmt: skip


def _free(device: str) -> None:
    import gc

    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def training_ratios(rows: list[dict]) -> list[dict]:
    """diffusers loop / ours per (size, batch): above 1 means ours is faster."""
    out = []
    for row in rows:
        if not row["impl"].startswith("diffusers"):
            continue
        for ours in rows:
            if (
                ours["size"] == row["size"]
                and ours["batch_size"] == row["batch_size"]
                and ours["impl"].startswith("ours")
                and ours["median_s"]
            ):
                out.append({
                    "size": row["size"], "batch_size": row["batch_size"], "ours": ours["impl"],
                    "peer_over_ours": row["median_s"] / ours["median_s"],
                })  # fmt: skip
    return out


def render(result: dict) -> str:
    meta = result["meta"]
    lines = [
        SECTION,
        "",
        f"Run by `.venv/bin/python benchmarks/bench_gpu.py` on {meta['device_name']} "
        f"({meta['cpus']} CPU cores), torch {meta['torch']}, {meta['when']}, "
        f"{meta['seconds']:.0f} s in all. Random-init weights; nothing downloaded.",
        "",
        "### Embeddings, images/s including JPEG read + decode (640x360 files)",
        "",
        "| model | precision | batch | ours | DataLoader recipe | forward limit "
        "| ours / DataLoader | goal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in result["embeddings"]:
        rec = row["recipes"]
        goal = EMBED_GOALS.get(row["arch"])
        ours = rec["ours"]["images_per_s"]
        verdict = "-" if goal is None else (f">= {goal:,.0f}: " + ("met" if ours >= goal else
                                                                   "NOT met"))  # fmt: skip
        lines.append(
            f"| {row['arch']} | {row['precision']} | {row['batch_size']} | {ours:,.0f} | "
            f"{rec['dataloader']['images_per_s']:,.0f} | {rec['forward']['images_per_s']:,.0f} | "
            f"{row['ratios']['ours/dataloader']:.2f} | {verdict} |"
        )
    lines += [
        "",
        "### LoRA training, seconds per step (median after warm-up; data loading included)",
        "",
        "| size | batch | implementation | s/step | images/s | cache fill s | peak GPU GB |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in result["training"]:
        gpu = "-" if row["peak_gpu_gb"] is None else f"{row['peak_gpu_gb']:.1f}"
        fill = "-" if not row.get("prepare_s") else f"{row['prepare_s']:.1f}"
        lines.append(
            f"| {row['size']} | {row['batch_size']} | {row['impl']} | {row['median_s']:.3f} | "
            f"{row['images_per_s']:.1f} | {fill} | {gpu} |"
        )
    lines += [
        "",
        "diffusers loop / ours (above 1: ours faster; goal >= 2 at batch 4 with caches):",
        "",
    ]
    for ratio in result["training_ratios"]:
        lines.append(
            f"- {ratio['size']} batch {ratio['batch_size']}, {ratio['ours']}: "
            f"{ratio['peer_over_ours']:.2f}x"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="CPU, tiny models, seconds")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--images", type=int, help="JPEG files to embed (default 3000; smoke 24)")
    parser.add_argument("--steps", type=int, help="timed training steps (default 10; smoke 2)")
    parser.add_argument("--skip-embeddings", action="store_true")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args(argv)

    import torch

    device = _device()
    if device != "cuda" and not args.smoke:
        parser.error("no CUDA device: run with --smoke (CPU, tiny models) or on a GPU machine")
    started = time.perf_counter()

    def log(line: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {line}", flush=True)

    images = args.images or (24 if args.smoke else 3000)
    steps = args.steps or (2 if args.smoke else 10)
    result: dict[str, Any] = {
        "smoke": args.smoke,
        "embeddings": [] if args.skip_embeddings else embedding_rows(args.smoke, images, log),
        "training": [] if args.skip_training else training_rows(args.smoke, steps, log),
    }
    result["training_ratios"] = training_ratios(result["training"])
    result["meta"] = {
        "device": device,
        "device_name": torch.cuda.get_device_name(0)
        if device == "cuda"
        else platform.processor() or "CPU",
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": time.perf_counter() - started,
    }
    text = render(result)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if device == "cuda" and not args.smoke and not args.no_docs:
        from docs_section import write_section

        write_section(SECTION, text)
    return result


if __name__ == "__main__":
    main()
