"""Training options, captioners and kohya parity: what the new options cost, and whether our
buckets and caption augmentation behave like kohya sd-scripts'.

One run on the CPU with the tiny random-init models (nothing downloaded), three parts:

1. **Training options**: seconds per LoRA step of the tiny SD model (64 px, rank 4, batch
   1, fp32, deterministic as in production) for the baseline and with one option each:
   validation loss every ``EVERY`` steps (``validation_split`` 0.25), validation images
   every ``EVERY`` steps (one prompt, 10 denoising steps), EMA of the LoRA weights, tag
   shuffle + tag dropout (the text cache is bypassed: the text encoder runs every step),
   masked loss; and the tiny FLUX model's baseline. Every run builds its models afresh and
   trains ``WARMUP + STEPS`` steps on the same 8 images; the cache store is shared, so
   latents are encoded once (the first run) and read afterwards. Time per step is
   amortised over the timed steps (validations included: they run between steps), from
   the end of step ``WARMUP`` to the end of the last; each variant runs 3 times,
   round-robin (order alternating), and the median of the 3 is reported with its ratio to
   the SD baseline, in wall and in process CPU seconds (the 2 cores are shared: CPU time
   is the steadier of the two).
2. **VLM captioners**: images/s of the tiny Florence-2, Qwen2-VL and BLIP-2 models of
   ``style_pipeline/models/vlm.py`` through ``VlmCaptioner`` (the captions stage's
   defaults: 3 beams, up to 60 new tokens, images downscaled to 768) at batch 1 and batch
   4, median of 3, and whether batching changed any caption; then the caption check's
   cost: the whole ``stages.captions.caption_partition`` on the same frames with
   ``check.enabled`` off, on (tiny CLIP, relative margin) and on + BLIP ITM (tiny),
   median of 3, relative to off. Random-init models: the throughputs measure the
   pipelines' overhead and batching, not what real weights cost.
3. **kohya parity**: ``benchmarks/peers/kohya_reference.py`` (kohya's
   ``make_bucket_resolutions``, ``BucketManager.select_bucket`` and ``process_caption``,
   copied) against ``training/buckets.py`` and ``training/caption_augment.py`` on 500
   synthetic image sizes and 2,000 synthetic tag captions: bucket lists equal or not,
   images put in the same bucket, the largest aspect error of each; the caption dropout
   rate, per-tag drop rates, kept tokens never moved, shuffles, and the normalisation of
   the caption text with the same options.

Run::

    .venv/bin/python benchmarks/bench_training_options.py [--json out.json] [--no-docs]
    .venv/bin/python benchmarks/bench_training_options.py --docs-from out.json  # re-render
    .venv/bin/python benchmarks/bench_training_options.py --smoke   # seconds; never the docs

It writes the section "Training options, captioners and kohya parity" of
docs/benchmarks.md (not in ``--smoke``).
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
for _path in (ROOT, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

SECTION = "## Training options, captioners and kohya parity"
TRIGGER = "sks style"
TAGS = [
    "woman", "man", "child", "dog", "street", "forest", "beach", "city", "night", "golden hour",
    "rain", "snow", "portrait", "landscape", "close-up", "wide shot", "red coat", "umbrella",
    "bicycle", "car", "window", "neon", "fog", "river", "bridge", "mountain", "tree", "flowers",
    "watercolor", "ink", "soft light", "backlight", "smiling", "walking", "sitting", "hat",
    "glasses", "crowd", "market", "train",
]  # fmt: skip


@dataclass
class Settings:
    """How much of everything one run measures (``--smoke``: just enough to run each path)."""

    rounds: int = 3
    warmup: int = 4
    steps: int = 8
    every: int = 4
    images: int = 8
    validation_inference_steps: int = 10
    vlm_images: int = 16
    check_frames: int = 8
    bucket_sizes: int = 500
    captions: int = 2000
    caption_epochs: int = 5
    families: tuple[str, ...] = ("florence2", "qwen2_vl", "blip2")
    vlm_overrides: dict = field(default_factory=dict)

    @classmethod
    def smoke(cls) -> Settings:
        return cls(
            rounds=1, warmup=1, steps=2, every=1, images=2, validation_inference_steps=1,
            vlm_images=2, check_frames=2, bucket_sizes=60, captions=100, caption_epochs=2,
            vlm_overrides={"max_new_tokens": 3, "num_beams": 1},
        )  # fmt: skip


# --- part 1: training options --------------------------------------------------------------


def variants(every: int, inference_steps: int) -> list[tuple[str, str, dict]]:
    """(key, label, LoraTrainingConfig overrides) of each measured run."""
    return [
        ("baseline", "SD tiny, baseline (latent + text caches)", {}),
        ("val_loss", f"+ validation loss every {every} (split 0.25)",
         {"validation_split": 0.25, "validation_every_n_steps": every}),
        ("val_images", f"+ validation images every {every} (1 prompt, {inference_steps} steps)",
         {"validation_prompts": (f"{TRIGGER}, woman, street",),
          "validation_every_n_steps": every, "validation_inference_steps": inference_steps}),
        ("ema", "+ EMA of the LoRA weights (decay 0.999)", {"ema_decay": 0.999}),
        ("tags", "+ tag shuffle + tag dropout 0.1, keep_tokens 1 (text cache bypassed)",
         {"shuffle_tags": True, "caption_tag_dropout_rate": 0.1, "keep_tokens": 1}),
        ("masked", "+ masked loss (a mask on every image)", {"masked_loss": True}),
        ("flux", "FLUX tiny, baseline (latent + text caches)", {}),
    ]  # fmt: skip


def tag_dataset(folder: Path, count: int, masks: bool) -> Path:
    """``count`` smooth-noise 64 px images with tag captions (trigger first), built into a
    training folder; with ``masks`` each has a face-box mask (``masks: faces``)."""
    import numpy as np
    from PIL import Image

    from style_pipeline.contracts.training import DatasetBuildConfig
    from style_pipeline.storage.store import Store
    from style_pipeline.training.dataset import (
        DatasetItem,
        build_training_dataset,
        download_dataset,
    )

    rng = np.random.default_rng(0)
    items = []
    for index in range(count):
        small = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(small).resize((64, 64), Image.Resampling.BICUBIC)
        path = folder / "src" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
        tags = [str(t) for t in rng.choice(TAGS, size=6, replace=False)]
        box = ((8.0, 8.0, 40.0, 44.0),) if masks else ()
        items.append(DatasetItem(str(path), ", ".join([TRIGGER, *tags]), f"img{index:03d}",
                                 boxes=box))  # fmt: skip
    store = Store(str(folder / "store"))
    config = DatasetBuildConfig(resolution=64, masks="faces" if masks else "none")
    build_training_dataset(items, store, "2026-01-01", config)
    return download_dataset(store, "2026-01-01", folder / "dataset")


def time_variant(key: str, overrides: dict, data_dir: Path, cache_dir: Path, s: Settings) -> dict:
    """One training run of a variant; step times amortised over the timed steps."""
    from style_pipeline.contracts.training import LoraTrainingConfig
    from style_pipeline.models.diffusion_configs import build_pipeline
    from style_pipeline.models.flux_configs import build_flux_pipeline
    from style_pipeline.storage.store import Store
    from style_pipeline.training.presets import PRESETS
    from style_pipeline.training.train_loop import deterministic_mode, train_pipeline

    if key == "flux":
        base = PRESETS["tiny_flux"]
        pipe = build_flux_pipeline(0)
    else:
        base = LoraTrainingConfig(name="tiny", profile="tiny", resolution=64, rank=4)
        pipe = build_pipeline("tiny", seed=0)
    fields = {**base.model_dump(), "name": f"bench-{key}", "device": "cpu",
              "max_train_steps": s.warmup + s.steps, "train_batch_size": 1,
              "lr_scheduler": "constant", **overrides}  # fmt: skip
    config = LoraTrainingConfig.model_validate(fields)
    marks: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory(prefix="options_") as tmp:
        started = time.perf_counter()
        with deterministic_mode(config.deterministic, config.seed):
            outcome = train_pipeline(
                pipe, data_dir, Path(tmp) / "out", config,
                progress=lambda _: marks.append((time.perf_counter(), time.process_time())),
                cache_store=Store(str(cache_dir)),
            )  # fmt: skip
        run_s = time.perf_counter() - started
    timed = marks[s.warmup - 1 :]  # marks are step ends: from the end of step `warmup`
    n = len(timed) - 1
    wall = [b[0] - a[0] for a, b in zip(timed, timed[1:], strict=False)]
    validations = len(outcome.validation_steps) or len(outcome.validation_losses)
    cache = outcome.cache
    return {
        "key": key,
        "steps_timed": n,
        "wall_s_per_step": (timed[-1][0] - timed[0][0]) / n,
        "cpu_s_per_step": (timed[-1][1] - timed[0][1]) / n,
        "median_step_wall_s": statistics.median(wall),
        "run_s": run_s,
        "validations": validations,
        "validations_timed": sum(
            1
            for st in (outcome.validation_steps or [st for st, _ in outcome.validation_losses])
            if st > s.warmup
        ),
        "validation_seconds": outcome.validation_seconds,
        "text_cache": bool(cache["text"].get("used")),
        "latent_cache": bool(cache["latents"].get("used")),
        "latents_encoded": cache["latents"].get("misses"),
        "masks": cache.get("masks"),
        "final_loss": outcome.final_loss,
        "family": outcome.family,
    }


def training_part(s: Settings, tmp: Path, log) -> dict:
    import torch

    from style_pipeline.models.diffusion_configs import build_components
    from style_pipeline.models.flux_configs import build_flux_components

    plain = tag_dataset(tmp / "plain", s.images, masks=False)
    masked = tag_dataset(tmp / "masked", s.images, masks=True)
    cache_dir = tmp / "cache_store"
    runs: dict[str, list[dict]] = {}
    order = variants(s.every, s.validation_inference_steps)
    for round_ in range(s.rounds):
        for key, _, overrides in order if round_ % 2 == 0 else order[::-1]:
            data_dir = masked if key == "masked" else plain
            result = time_variant(key, overrides, data_dir, cache_dir, s)
            runs.setdefault(key, []).append(result)
            log(f"[train] round {round_ + 1} {key}: {result['wall_s_per_step']:.3f} s/step wall, "
                f"{result['cpu_s_per_step']:.3f} CPU, run {result['run_s']:.1f} s")  # fmt: skip
    rows = []
    for key, label, overrides in order:
        rs = runs[key]
        row = {
            "key": key,
            "label": label,
            "overrides": {k: list(v) if isinstance(v, tuple) else v for k, v in overrides.items()},
            "runs": rs,
            "wall_s_per_step": statistics.median(r["wall_s_per_step"] for r in rs),
            "cpu_s_per_step": statistics.median(r["cpu_s_per_step"] for r in rs),
            "validations_timed": rs[0]["validations_timed"],
            "s_per_validation": statistics.median(
                r["validation_seconds"] / r["validations"] for r in rs
            ) if rs[0]["validations"] else None,
            "text_cache": rs[0]["text_cache"],
        }  # fmt: skip
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["wall_ratio"] = row["wall_s_per_step"] / base["wall_s_per_step"]
        row["cpu_ratio"] = row["cpu_s_per_step"] / base["cpu_s_per_step"]
    sd = build_components("tiny", seed=0)["unet"]
    flux = build_flux_components(0)["transformer"]
    return {
        "rows": rows,
        "warmup": s.warmup,
        "steps": s.steps,
        "every": s.every,
        "rounds": s.rounds,
        "images": s.images,
        "params": {
            "sd_unet": sum(p.numel() for p in sd.parameters()),
            "flux_transformer": sum(p.numel() for p in flux.parameters()),
        },
        "torch_threads": torch.get_num_threads(),
    }


# --- part 2: VLM captioners and caption checks -------------------------------------------


def synthetic_images(count: int, size: tuple[int, int] = (320, 240)):
    """Gradients with a disc, one colour pair per image."""
    from PIL import Image, ImageDraw

    images = []
    for i in range(count):
        image = Image.new("RGB", size, ((37 * i) % 256, 90, (200 - 23 * i) % 256))
        draw = ImageDraw.Draw(image)
        x = 40 + (i * 29) % (size[0] - 120)
        draw.ellipse((x, 60, x + 80, 140), fill=((90 + 51 * i) % 256, (30 * i) % 256, 40))
        images.append(image)
    return images


def vlm_part(s: Settings, tmp: Path, log) -> dict:
    from style_pipeline.captioning.vlm import VlmCaptioner
    from style_pipeline.contracts.captioning_vlm import VlmCaptionConfig
    from style_pipeline.models.vlm import load_vlm

    defaults = VlmCaptionConfig()
    images = synthetic_images(s.vlm_images)
    rows = []
    for family in s.families:
        config = VlmCaptionConfig(profile="tiny", family=family, cache_dir=str(tmp / "vlm"),  # type: ignore[arg-type]
                                  device="cpu")  # fmt: skip
        loaded = load_vlm(config, TAGS)
        prompt = {"florence2": defaults.task, "qwen2_vl": "Describe the image in tags.",
                  "blip2": ""}[family]  # fmt: skip
        kwargs = {"max_new_tokens": defaults.max_new_tokens, "num_beams": defaults.num_beams,
                  "max_image_edge": defaults.max_image_edge, **s.vlm_overrides}  # fmt: skip
        captioners = {
            batch: VlmCaptioner(loaded, default_prompt=prompt, batch_size=batch, **kwargs)
            for batch in (1, 4)
        }
        for captioner in captioners.values():  # the pipeline is built on first use
            captioner.caption(images[: min(4, len(images))])
        seconds: dict[int, list[float]] = {1: [], 4: []}
        captions: dict[int, list[str]] = {}
        for round_ in range(s.rounds):
            for batch in (1, 4) if round_ % 2 == 0 else (4, 1):
                started = time.perf_counter()
                out = captioners[batch].caption(images)
                seconds[batch].append(time.perf_counter() - started)
                captions[batch] = [r.caption for r in out]
        tokenizer = getattr(loaded.processor, "tokenizer", None)
        tokens = [len(tokenizer(c, add_special_tokens=False).input_ids) if tokenizer else 0
                  for c in captions[1]]  # fmt: skip
        ips = {b: len(images) / statistics.median(v) for b, v in seconds.items()}
        same = sum(a == b for a, b in zip(captions[1], captions[4], strict=True))
        rows.append({
            "family": family,
            "model_id": loaded.model_id,
            "parameters": sum(p.numel() for p in loaded.model.parameters()),
            "images": len(images),
            "images_per_s_b1": ips[1],
            "images_per_s_b4": ips[4],
            "ratio_b4_b1": ips[4] / ips[1],
            "seconds": {str(k): v for k, v in seconds.items()},
            "mean_caption_tokens": statistics.fmean(tokens) if tokens else 0.0,
            "same_captions_b1_b4": same,
            "example": captions[4][0][:60],
            **kwargs,
        })  # fmt: skip
        log(f"[vlm] {family}: b1 {ips[1]:.2f} img/s, b4 {ips[4]:.2f} img/s, "
            f"x{ips[4] / ips[1]:.2f}, same captions {same}/{len(images)}")  # fmt: skip
    return {"rows": rows}


def check_part(s: Settings, tmp: Path, log) -> dict:
    """``caption_partition`` with the check off, on (CLIP) and on + ITM, for two backends."""
    import polars as pl

    from style_pipeline.captioning.vocabulary import load_default_ontology
    from style_pipeline.contracts.caption_checks import CaptionCheckConfig
    from style_pipeline.contracts.captioning import CaptionConfig
    from style_pipeline.contracts.models import BlipModelConfig, ModelConfig
    from style_pipeline.stages.captions import CheckModels, caption_partition
    from style_pipeline.storage.store import Store

    day = "2026-04-05"
    store = Store(str(tmp / "check_store"))
    ontology = load_default_ontology()
    pairs = [(c.name, t.term) for c in ontology.categories for t in c.terms[:2]]
    rows = []
    for i, image in enumerate(synthetic_images(s.check_frames)):
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        store.put_bytes(buffer.getvalue(), f"frames/{day}/f{i}.jpg")
        rows.append({"frame_id": f"f{i}", "keep": True, "path": f"frames/{day}/f{i}.jpg",
                     "labels": [{"category": pairs[i % len(pairs)][0],
                                 "term": pairs[i % len(pairs)][1], "score": 0.9}]})  # fmt: skip
    labels = pl.List(pl.Struct({"category": pl.String(), "term": pl.String(),
                                "score": pl.Float64()}))  # fmt: skip
    curated = pl.DataFrame(rows, schema_overrides={"labels": labels})
    models = tmp / "check_models"
    clip = ModelConfig(profile="tiny", cache_dir=str(models), device="cpu")
    itm = BlipModelConfig(profile="tiny", cache_dir=str(models), device="cpu")
    vlm = {"profile": "tiny", "family": "florence2", "cache_dir": str(tmp / "vlm"),
           "device": "cpu", **s.vlm_overrides}  # fmt: skip
    checks = {
        "off": CaptionCheckConfig(enabled="off"),
        "on (CLIP)": CaptionCheckConfig(enabled="on", use_itm="off"),
        "on (CLIP + BLIP ITM)": CaptionCheckConfig(enabled="on", use_itm="on", itm_model=itm),
    }
    backends = {"vlm (Florence-2 tiny)": "vlm", "template": "template"}
    out = []
    for backend_label, backend in backends.items():
        configs = {
            name: CaptionConfig(
                backend=backend,
                trigger_word="sps_style",
                token_counter="approx",  # type: ignore[arg-type]
                check=check,
                vlm=vlm,
            )  # fmt: skip
            for name, check in checks.items()
        }
        for config in configs.values():  # untimed: builds and saves the tiny models once
            caption_partition(curated.head(2), ontology, store, config, models=CheckModels(clip))
        times: dict[str, list[float]] = {name: [] for name in configs}
        facts: dict[str, dict] = {}
        for round_ in range(s.rounds):
            names = list(configs) if round_ % 2 == 0 else list(configs)[::-1]
            for name in names:
                started = time.perf_counter()
                table, fact = caption_partition(
                    curated, ontology, store, configs[name], models=CheckModels(clip)
                )
                times[name].append(time.perf_counter() - started)
                facts[name] = {
                    **fact,
                    "distinct": table["first_caption"].fill_null(table["caption"]).n_unique(),
                }
        off = statistics.median(times["off"])
        for name, values in times.items():
            median = statistics.median(values)
            fact = facts[name]
            out.append({
                "backend": backend_label,
                "check": name,
                "frames": len(curated),
                "seconds": values,
                "median_s": median,
                "s_per_frame": median / len(curated),
                "overhead_vs_off": median / off - 1,
                "mismatched": fact.get("mismatched", 0),
                "recaptioned": fact.get("recaptioned", 0),
                "recaption_attempts": fact.get("recaption_attempts", 0),
                "still_mismatched": fact.get("still_mismatched", 0),
                "distinct_first_captions": fact["distinct"],
                "caption_check": fact.get("caption_check"),
            })  # fmt: skip
            log(f"[check] {backend_label} / {name}: {median:.2f} s "
                f"({median / off - 1:+.0%} vs off), mismatched {fact.get('mismatched')}, "
                f"re-caption attempts {fact.get('recaption_attempts')}")  # fmt: skip
    return {"rows": out}


# --- part 3: kohya parity --------------------------------------------------------------------


def synthetic_sizes(count: int, seed: int = 0) -> list[tuple[int, int]]:
    """Camera and screen sizes (both orientations), exact bucket sizes, and random sizes
    with aspect ratios log-uniform in 1:4..4:1 (a few beyond, to 1:6)."""
    rng = random.Random(seed)
    common = [(1920, 1080), (1080, 1920), (4032, 3024), (3024, 4032), (1024, 1024),
              (512, 768), (768, 512), (2048, 1365), (1365, 2048), (3840, 2160), (800, 600),
              (640, 480), (1280, 720), (720, 1280), (6000, 4000), (4000, 6000), (512, 512),
              (832, 1216), (1216, 832), (2560, 1080)]  # fmt: skip
    sizes = common[: min(len(common), count)]
    exact = [(448, 576), (576, 448), (384, 640), (640, 384), (320, 768), (768, 320)]
    sizes += exact[: max(0, min(len(exact), count - len(sizes)))]
    while len(sizes) < count:
        ratio = math.exp(rng.uniform(math.log(1 / 4), math.log(4)))
        if rng.random() < 0.04:
            ratio = rng.choice((1 / 6, 1 / 5, 5.0, 6.0))
        area = math.exp(rng.uniform(math.log(200 * 200), math.log(5000 * 4000)))
        width = max(16, round(math.sqrt(area * ratio)))
        height = max(16, round(width / ratio))
        sizes.append((width, height))
    return sizes


def bucket_parity(sizes: list[tuple[int, int]]) -> list[dict]:
    """kohya's buckets vs ours on ``sizes`` for three settings."""
    from peers.kohya_reference import BucketManager

    from style_pipeline.training.buckets import bucket_limits, make_buckets, select_bucket

    cases = [
        ("512 px, both defaults", 512, (256, 1024)),
        ("1024 px, both defaults", 1024, (256, 1024)),
        ("1024 px, kohya given our limits", 1024, bucket_limits(1024)),
    ]
    rows = []
    for label, resolution, (kmin, kmax) in cases:
        manager = BucketManager(False, (resolution, resolution), kmin, kmax, 64)
        manager.make_buckets()
        ours = make_buckets(resolution, 64)
        theirs = list(manager.predefined_resos)
        same, differ = 0, list[str]()
        k_err, o_err, k_in, o_in, k_area, o_area = [], [], [], [], [], []
        for width, height in sizes:
            k_bucket, _, ar_error = manager.select_bucket(width, height)
            o_bucket = select_bucket(width, height, ours)
            same += tuple(k_bucket) == o_bucket
            k_err.append(abs(ar_error))
            o_err.append(abs(o_bucket[0] / o_bucket[1] - width / height))
            if 1 / 4 <= width / height <= 4:  # inside both bucket ranges' extremes
                k_in.append(k_err[-1])
                o_in.append(o_err[-1])
            k_area.append(k_bucket[0] * k_bucket[1] / resolution**2)
            o_area.append(o_bucket[0] * o_bucket[1] / resolution**2)
            if tuple(k_bucket) != o_bucket and len(differ) < 3:
                differ.append(f"{width}x{height}: kohya {k_bucket[0]}x{k_bucket[1]}, "
                              f"ours {o_bucket[0]}x{o_bucket[1]}")  # fmt: skip
        rows.append({
            "case": label,
            "resolution": resolution,
            "kohya_limits": [kmin, kmax],
            "our_limits": list(bucket_limits(resolution)),
            "kohya_buckets": len(theirs),
            "our_buckets": len(ours),
            "lists_equal": sorted(theirs) == sorted(ours),
            "images": len(sizes),
            "same_bucket": same,
            "agreement": same / len(sizes),
            "kohya_max_ar_error": max(k_err),
            "our_max_ar_error": max(o_err),
            "kohya_max_ar_error_1_4": max(k_in),
            "our_max_ar_error_1_4": max(o_in),
            "kohya_mean_ar_error": statistics.fmean(k_err),
            "our_mean_ar_error": statistics.fmean(o_err),
            "kohya_mean_area": statistics.fmean(k_area),
            "our_mean_area": statistics.fmean(o_area),
            "examples_differing": differ,
        })  # fmt: skip
    return rows


def synthetic_captions(count: int, seed: int = 0) -> list[str]:
    """Trigger word, then 3..12 distinct tags; about 4% malformed (an empty tag from a
    doubled or trailing comma) and 4% without spaces after the commas."""
    rng = random.Random(seed)
    captions = []
    for _ in range(count):
        tags = [TRIGGER, *rng.sample(TAGS, rng.randint(3, 12))]
        caption = ", ".join(tags)
        draw = rng.random()
        if draw < 0.02:
            caption += ","
        elif draw < 0.04:
            at = rng.randint(1, len(tags) - 1)
            caption = ", ".join(tags[:at]) + ", , " + ", ".join(tags[at:])
        elif draw < 0.08:
            caption = ",".join(tags)
        captions.append(caption)
    return captions


def _split(caption: str) -> list[str]:
    return [t.strip() for t in caption.split(",")]


def augment_stats(outputs: list[tuple[str, str]], keep: int) -> dict:
    """Statistics of (input, output) caption pairs: dropout rate, and over the well-formed
    inputs (no empty tag) of undropped captions the per-tag drop rates of the free (not
    kept) tags, the kept tags in place and the shuffled order; empty tags in any output."""
    dropped = sum(1 for _, out in outputs if out == "")
    seen: Counter[str] = Counter()
    lost: Counter[str] = Counter()
    kept_in_place = kept_total = reordered = reorder_total = empty_tags = 0
    for caption, out in outputs:
        if out == "":
            continue
        source = _split(caption)
        result = _split(out)
        empty_tags += "" in result
        if "" in source:  # malformed: each side has its own reading (see caption_parity)
            continue
        kept_total += 1
        kept_in_place += result[:keep] == source[:keep]
        free_in = [t for t in source[keep:] if t]
        free_out = [t for t in result[keep:] if t]
        present = Counter(free_out)
        for tag in free_in:
            seen[tag] += 1
            if present[tag] > 0:
                present[tag] -= 1
            else:
                lost[tag] += 1
        survivors = [t for t in free_in if t in set(free_out)]
        if len(survivors) >= 3:
            reorder_total += 1
            reordered += survivors != free_out
    rates = {tag: lost[tag] / seen[tag] for tag in seen}
    return {
        "draws": len(outputs),
        "dropout_rate": dropped / len(outputs),
        "tag_drop_rate": sum(lost.values()) / max(1, sum(seen.values())),
        "per_tag": rates,
        "per_tag_counts": dict(seen),
        "kept_in_place": kept_in_place,
        "kept_total": kept_total,
        "reordered_share": reordered / max(1, reorder_total),
        "outputs_with_empty_tag": empty_tags,
    }


def caption_parity(captions: list[str], epochs: int) -> dict:
    """kohya's ``process_caption`` vs our ``augment_caption``, same options and rates."""
    import torch
    from peers.kohya_reference import CaptionDataset, Subset

    from style_pipeline.training.caption_augment import CaptionAugment, augment_caption

    drop, tag_drop, keep = 0.1, 0.2, 2
    rates = {
        "caption_dropout_rate": drop,
        "caption_tag_dropout_rate": tag_drop,
        "keep_tokens": keep,
    }
    kohya_subset = Subset(drop, tag_drop, keep, shuffle_caption=True)
    ours = CaptionAugment(drop, tag_drop, keep, True)
    dataset = CaptionDataset()
    random.seed(0)
    generator = torch.Generator().manual_seed(0)
    k_out, o_out = [], []
    started = time.perf_counter()
    for _ in range(epochs):
        for caption in captions:
            k_out.append((caption, dataset.process_caption(kohya_subset, caption)))
    kohya_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(epochs):
        for caption in captions:
            o_out.append((caption, augment_caption(caption, ours, generator)))
    ours_s = time.perf_counter() - started
    k_stats, o_stats = augment_stats(k_out, keep), augment_stats(o_out, keep)
    # per-tag rates: the largest gap, and how many tags differ beyond a 99% two-sided bound
    gaps, beyond = [], 0
    for tag, k_rate in k_stats["per_tag"].items():
        o_rate = o_stats["per_tag"].get(tag)
        if o_rate is None:
            continue
        n_k, n_o = k_stats["per_tag_counts"][tag], o_stats["per_tag_counts"][tag]
        pooled = (k_rate * n_k + o_rate * n_o) / (n_k + n_o)
        se = math.sqrt(max(pooled * (1 - pooled) * (1 / n_k + 1 / n_o), 1e-12))
        gaps.append(abs(k_rate - o_rate))
        beyond += abs(k_rate - o_rate) / se > 2.576
    # normalisation: the tag path with no randomness that changes anything (a tag dropout
    # rate too small to ever drop, no shuffle): the text each implementation trains on
    tiny = 1e-12
    k_plain = [CaptionDataset().process_caption(Subset(caption_tag_dropout_rate=tiny), c)
               for c in captions]  # fmt: skip
    o_plain = [augment_caption(c, CaptionAugment(0.0, tiny, 0, False), torch.Generator())
               for c in captions]  # fmt: skip
    equal = sum(a == b for a, b in zip(k_plain, o_plain, strict=True))
    differ = [(c, a, b) for c, a, b in zip(captions, k_plain, o_plain, strict=True) if a != b]
    # with every option off both return the caption unchanged
    k_off = [CaptionDataset().process_caption(Subset(), c) for c in captions]
    o_off = [augment_caption(c, CaptionAugment(), torch.Generator()) for c in captions]
    for stats in (k_stats, o_stats):
        values = list(stats["per_tag"].values())
        stats["per_tag_min"], stats["per_tag_max"] = min(values), max(values)
        stats.pop("per_tag_counts")
    return {
        "options": {**rates, "shuffle": True},
        "captions": len(captions),
        "epochs": epochs,
        "kohya": k_stats,
        "ours": o_stats,
        "per_tag_max_gap": max(gaps),
        "tags_compared": len(gaps),
        "tags_beyond_99pct": beyond,
        "normalised_equal": equal,
        "normalised_examples_differing": [
            {"input": c, "kohya": a, "ours": b}
            for c, a, b in sorted(differ, key=lambda d: len(d[0]))[:2]
        ],
        "malformed_inputs": sum(1 for c in captions if "" in _split(c)),
        "all_off_equal": sum(a == b == c for a, b, c in zip(k_off, o_off, captions, strict=True)),
        "seconds": {"kohya": kohya_s, "ours": ours_s},
    }


def kohya_part(s: Settings) -> dict:
    sizes = synthetic_sizes(s.bucket_sizes)
    return {
        "buckets": bucket_parity(sizes),
        "captions": caption_parity(synthetic_captions(s.captions), s.caption_epochs),
    }


# --- report ----------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def bucket_note(rows: list[dict]) -> str:
    """Where the bucket lists agree and where the defaults part ways."""
    equal = [r for r in rows if r["lists_equal"]]
    differ = [r for r in rows if not r["lists_equal"]]
    text = (
        "Buckets: "
        + "; ".join(
            f"{r['case']}: lists {'equal' if r['lists_equal'] else 'different'}, "
            f"{_pct(r['agreement'])} of the images in the same bucket"
            for r in rows
        )
        + "."
    )
    if equal and all(r["agreement"] == 1.0 for r in equal):
        text += " With the same limits they agree on every image here."
    for r in differ:
        example = r["examples_differing"][0] if r["examples_differing"] else ""
        text += (
            f" At {r['resolution']} px the defaults differ: kohya's command line keeps "
            f"{r['kohya_limits'][0]}-{r['kohya_limits'][1]} whatever the resolution (its "
            "docs suggest raising `max_bucket_reso`, e.g. to 1280, for larger resolutions), "
            f"ours scales the limits with it ({r['our_limits'][0]}-{r['our_limits'][1]}), so "
            "kohya's buckets never exceed 1024 on a side and non-square images train on fewer "
            f"pixels (mean bucket area {_pct(r['kohya_mean_area'])} of {r['resolution']}² "
            f"against ours {_pct(r['our_mean_area'])}; e.g. {example}), with a mean aspect "
            f"error of {r['kohya_mean_ar_error']:.4f} against ours {r['our_mean_ar_error']:.4f}."
        )
    return text


def check_note(rows: list[dict]) -> str:
    """What the tiny models did in the check rows (mismatches drive the re-caption cost)."""
    vlm = [r for r in rows if r["backend"].startswith("vlm") and r["check"] != "off"]
    template = [r for r in rows if r["backend"] == "template" and r["check"] != "off"]
    parts = []
    if vlm:
        r = vlm[0]
        why = (
            "the relative check had no other distinct caption to compare with and used the "
            "absolute floor"
            if r["distinct_first_captions"] < 2
            else "the relative check compares each caption with the frame's other captions"
        )
        parts.append(
            f"With the tiny CLIP (random weights: its similarities mean nothing) {r['mismatched']} "
            f"of {r['frames']} VLM captions were flagged (distinct first captions: "
            f"{r['distinct_first_captions']}, so {why}) and {r['recaption_attempts']} "
            "re-captioned (a re-caption is kept only when it ranks better), so the VLM ran "
            f"{1 + r['recaption_attempts'] / r['frames']:.1f} times per frame, which is most of "
            "the overhead; with pretrained weights only captions that do not fit their frame "
            "should fail, so the overhead follows the captioner's quality"
        )
    if template:
        r = template[0]
        parts.append(
            f"the template captioner costs nothing, so its rows show the check alone "
            f"(loading CLIP, encoding {r['frames']} images and their captions; "
            f"{r['mismatched']} flagged, a template is never re-captioned)"
        )
    return ("; ".join(parts) + ".") if parts else ""


def report(result: dict) -> str:
    train, vlm, check, kohya = (result[k] for k in ("training", "vlm", "checks", "kohya"))
    meta = result["meta"]
    lines = [
        SECTION,
        "",
        f"Run on {meta['machine']} / Python {meta['python']}, torch {meta['torch']}, "
        f"transformers {meta['transformers']}, {meta['cpus']} CPU cores shared with other "
        f"jobs, torch threads: {train['torch_threads']}, no GPU, by "
        "`.venv/bin/python benchmarks/bench_training_options.py` in "
        f"{meta['wall_s']:.0f} s (load average at the end: {meta['load'][0]:.1f} over 1 min, "
        f"{meta['load'][1]:.1f} over 5 min). Random-init tiny models throughout (nothing "
        "downloaded): the numbers are the cost of the code paths, not of real models.",
        "",
        "### Training options: seconds per LoRA step",
        "",
        f"Tiny SD (UNet {train['params']['sd_unet']:,} parameters) and tiny FLUX (transformer "
        f"{train['params']['flux_transformer']:,}) at 64 px, rank 4, batch 1, fp32, "
        f"deterministic, {train['images']} images with tag captions. Each run trains "
        f"{train['warmup']} + {train['steps']} steps; the time per step is amortised over the "
        f"last {train['steps']} (validations run between steps, so they are in it); median "
        f"of {train['rounds']} runs per row, round-robin. Ratios are to the SD baseline. Read "
        "the CPU columns first: with one torch thread CPU seconds are the work done, while "
        "wall seconds also hold the waits for the cores the other jobs were using.",
        "",
        "| run | wall s/step | CPU s/step | wall ratio | CPU ratio | validations in the timed "
        "steps | wall s per validation | text cache |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in train["rows"]:
        per_val = "-" if row["s_per_validation"] is None else f"{row['s_per_validation']:.2f}"
        vals = row["validations_timed"] if row["s_per_validation"] is not None else "-"
        lines.append(
            f"| {row['label']} | {row['wall_s_per_step']:.3f} | {row['cpu_s_per_step']:.3f} "
            f"| {row['wall_ratio']:.2f}x | {row['cpu_ratio']:.2f}x | {vals} | {per_val} "
            f"| {'used' if row['text_cache'] else 'bypassed'} |"
        )
    rows = {r["key"]: r for r in train["rows"]}
    base_cpu = rows["baseline"]["cpu_s_per_step"]
    per_step = []
    for key, name in (("val_loss", "validation loss"), ("val_images", "validation images")):
        row = rows[key]
        if row["validations_timed"]:
            # CPU seconds a validation adds, from the step times: (variant - baseline) over
            # the timed steps, divided by the validations among them
            extra = (row["cpu_s_per_step"] - base_cpu) * train["steps"] / row["validations_timed"]
            row["cpu_s_per_validation"] = extra
            per_step.append(
                f"{name} {extra:.2f} CPU s per validation = {extra / base_cpu:.1f} baseline "
                f"steps, i.e. +{extra / base_cpu:.1f}% of the run at N = 100"
            )
    lines += [
        "",
        "A validation costs the same whatever N is, so its share of the run is (its cost in "
        "steps) / N: " + "; ".join(per_step) + ". The held-out loss is one forward per held-out "
        "image with fixed noise; the images are a full denoising run of the pipeline per "
        "prompt (UNet with guidance, VAE decode) plus the grid PNG. EMA (one `lerp_` per LoRA "
        f"tensor per step): {rows['ema']['cpu_ratio']:.2f}x; masked loss (a latent-sized mask, "
        f"computed with the latents, once): {rows['masked']['cpu_ratio']:.2f}x. Tag shuffle / "
        "tag dropout make the caption set open, so the text cache cannot serve them and the "
        f"text encoder runs every step: {rows['tags']['cpu_ratio']:.2f}x with the tiny "
        "encoder; a real CLIP-L (SD 1.5) or SDXL's two encoders cost more per step than this "
        "(not measured here). The tiny FLUX's transformer is much smaller than the tiny SD "
        "UNet, so its ratio says nothing about real FLUX.1 against SD.",
        "",
        "### VLM captioners: images/s, batch 1 vs 4",
        "",
        f"`VlmCaptioner` on {vlm['rows'][0]['images']} synthetic 320x240 images with the "
        f"captions stage's defaults (beams {vlm['rows'][0]['num_beams']}, up to "
        f"{vlm['rows'][0]['max_new_tokens']} new tokens), median of {train['rounds']} passes "
        "each, after an untimed pass that builds the transformers pipeline.",
        "",
        "| family | parameters | img/s batch 1 | img/s batch 4 | batch 4 / batch 1 "
        "| mean tokens per caption | captions equal at both batch sizes |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in vlm["rows"]:
        lines.append(
            f"| {row['family']} | {row['parameters']:,} | {row['images_per_s_b1']:.2f} "
            f"| {row['images_per_s_b4']:.2f} | {row['ratio_b4_b1']:.2f}x "
            f"| {row['mean_caption_tokens']:.1f} | {row['same_captions_b1_b4']}/{row['images']} |"
        )
    lines += [
        "",
        "Random-init weights generate until `max_new_tokens` or an end token they happen to "
        "draw: the tokens column says how much generation each row paid for ("
        + ", ".join(f"{r['family']} {r['mean_caption_tokens']:.0f}" for r in vlm["rows"])
        + " tokens per caption here). Batching amortises the per-call cost of the "
        "processor, the pipeline and the generation loop over 4 images; with real weights the "
        "model's own compute is a much larger share and the ratio will be smaller. The last "
        "column checks that padding inside a batch changes no caption.",
        "",
        "### Caption check overhead (captions stage)",
        "",
        f"The whole `stages.captions.caption_partition` on {check['rows'][0]['frames']} "
        "JPEG frames (model loading from the local cache included, as in the stage), median "
        f"of {train['rounds']}; the check's CLIP image vectors are computed (the embeddings "
        "cache is empty here; after the curation stage it would hold them). "
        + check_note(check["rows"]),
        "",
        "| captioner | check | s (median) | s per frame | vs check off | mismatched "
        "| re-caption attempts | re-captions kept |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in check["rows"]:
        lines.append(
            f"| {row['backend']} | {row['check']} | {row['median_s']:.2f} "
            f"| {row['s_per_frame']:.3f} | {row['overhead_vs_off']:+.0%} | {row['mismatched']} "
            f"| {row['recaption_attempts']} | {row['recaptioned']} |"
        )
    lines += [
        "",
        "### kohya sd-scripts parity: buckets",
        "",
        "kohya's `make_bucket_resolutions` and `BucketManager.select_bucket` (copied into "
        "`benchmarks/peers/kohya_reference.py` from kohya-ss/sd-scripts 48d368f, Apache-2.0; "
        "`bucket_no_upscale` off, steps of 64) against `training/buckets.py` on "
        f"{kohya['buckets'][0]['images']} synthetic image sizes (camera and screen sizes, "
        "exact bucket sizes, random sizes with aspect ratios from 1:6 to 6:1). Aspect error: "
        "|bucket w/h - image w/h| (kohya's `ar_error`); the largest over all images is set by "
        "the 1:6 and 6:1 ones, beyond every bucket, so it is also given for the images "
        "between 1:4 and 4:1. Pixels: the bucket's area over resolution², mean over images.",
        "",
        "| case | limits kohya / ours | buckets kohya / ours | lists equal | same bucket "
        "| max aspect error kohya / ours (all; 1:4-4:1) | mean aspect error kohya / ours "
        "| pixels kohya / ours |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in kohya["buckets"]:
        lines.append(
            f"| {row['case']} | {row['kohya_limits'][0]}-{row['kohya_limits'][1]} / "
            f"{row['our_limits'][0]}-{row['our_limits'][1]} | {row['kohya_buckets']} / "
            f"{row['our_buckets']} | {'yes' if row['lists_equal'] else 'no'} "
            f"| {row['same_bucket']}/{row['images']} ({_pct(row['agreement'])}) "
            f"| {row['kohya_max_ar_error']:.3f} / {row['our_max_ar_error']:.3f}; "
            f"{row['kohya_max_ar_error_1_4']:.3f} / {row['our_max_ar_error_1_4']:.3f} "
            f"| {row['kohya_mean_ar_error']:.4f} / {row['our_mean_ar_error']:.4f} "
            f"| {_pct(row['kohya_mean_area'])} / {_pct(row['our_mean_area'])} |"
        )
    lines += ["", bucket_note(kohya["buckets"])]
    cap = kohya["captions"]
    k, o = cap["kohya"], cap["ours"]
    opts = cap["options"]
    lines += [
        "",
        "### kohya sd-scripts parity: caption augmentation",
        "",
        f"kohya's `process_caption` (same file) against `training/caption_augment.py` with "
        f"the same options (caption dropout {opts['caption_dropout_rate']}, tag dropout "
        f"{opts['caption_tag_dropout_rate']}, keep_tokens {opts['keep_tokens']}, shuffle on) "
        f"on {cap['captions']:,} synthetic tag captions x {cap['epochs']} epochs "
        f"({k['draws']:,} draws each; kohya from Python's `random`, ours from a seeded torch "
        "generator). Per-tag drop rate: share of a tag's occurrences (after the kept ones, in "
        "captions not dropped whole) missing from the output.",
        "",
        "| statistic | kohya | ours |",
        "|---|---|---|",
        f"| whole-caption dropout rate (nominal {opts['caption_dropout_rate']}) "
        f"| {k['dropout_rate']:.4f} | {o['dropout_rate']:.4f} |",
        f"| tag drop rate, all tags (nominal {opts['caption_tag_dropout_rate']}) "
        f"| {k['tag_drop_rate']:.4f} | {o['tag_drop_rate']:.4f} |",
        f"| per-tag drop rate, min - max over {cap['tags_compared']} tags "
        f"| {k['per_tag_min']:.3f} - {k['per_tag_max']:.3f} "
        f"| {o['per_tag_min']:.3f} - {o['per_tag_max']:.3f} |",
        f"| kept tokens in place (first {opts['keep_tokens']} tags) "
        f"| {k['kept_in_place']}/{k['kept_total']} | {o['kept_in_place']}/{o['kept_total']} |",
        f"| free tags reordered (captions with >= 3 surviving) | {_pct(k['reordered_share'])} "
        f"| {_pct(o['reordered_share'])} |",
        f"| outputs holding an empty tag | {k['outputs_with_empty_tag']} "
        f"| {o['outputs_with_empty_tag']} |",
        "",
        f"Per-tag drop rates: largest gap between the two {cap['per_tag_max_gap']:.3f}; "
        f"{cap['tags_beyond_99pct']} of {cap['tags_compared']} tags differ beyond a 99% "
        "two-proportion bound (about 1% would by chance). With every option off both return "
        f"every caption unchanged ({cap['all_off_equal']}/{cap['captions']}). Through the tag "
        "path without randomness (tag dropout 1e-12, no shuffle) the text trained on is "
        f"identical for {cap['normalised_equal']}/{cap['captions']} captions; "
        f"{cap['captions'] - cap['normalised_equal']} differ, and {cap['malformed_inputs']} "
        "inputs are malformed (an empty tag from `a, , b` or a trailing comma; the inputs "
        "without a space after the commas come out the same on both sides): kohya keeps an "
        "empty tag (`a, , b` stays, a trailing comma becomes `, `), ours drops it",
    ]
    examples = cap["normalised_examples_differing"]
    if examples:
        ex = examples[0]
        lines[-1] += f" (e.g. `{ex['input']}` -> kohya `{ex['kohya']}`, ours `{ex['ours']}`)"
    lines[-1] += (
        ". Other differences, by design: ours draws from the training loop's seeded "
        "generator (resume replays the same captions), and does not read kohya's "
        "`keep_tokens_separator`, wildcards, multi-line captions, `token_warmup` or "
        "`caption_dropout_every_n_epochs`."
    )
    lines += [
        "",
        "",
    ]
    return "\n".join(lines) + "\n"


def meta(started: float) -> dict:
    import torch
    import transformers

    return {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cpus": os.cpu_count(),
        "load": list(os.getloadavg()),
        "wall_s": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a few seconds; never the docs")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument(
        "--docs-from", type=Path, help="write the section from a --json of an earlier run"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    if args.docs_from:
        text = report(json.loads(args.docs_from.read_text()))
        print(text)
        if not args.no_docs:
            from docs_section import write_section

            write_section(SECTION, text)
        return
    settings = Settings.smoke() if args.smoke else Settings()
    import torch

    # one thread: on 2 shared cores a second OpenMP thread spins while the other jobs hold
    # the cores, which inflates CPU seconds with the load; one thread keeps them steady
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"{time.perf_counter() - started:7.1f}s {message}", flush=True)

    with tempfile.TemporaryDirectory(prefix="bench_options_") as tmp_name:
        tmp = Path(tmp_name)
        result: dict[str, Any] = {"smoke": args.smoke}
        result["kohya"] = kohya_part(settings)
        log("[kohya] done")
        result["training"] = training_part(settings, tmp, log)
        result["vlm"] = vlm_part(settings, tmp, log)
        result["checks"] = check_part(settings, tmp, log)
    result["meta"] = meta(started)
    text = report(result)
    print(text)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1, default=str))
    if not args.smoke and not args.no_docs:
        from docs_section import write_section

        write_section(SECTION, text)


if __name__ == "__main__":
    main()
