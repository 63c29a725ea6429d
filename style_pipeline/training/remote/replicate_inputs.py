"""What a Replicate trainer is sent: the dataset zip and the inputs mapped from the config.

The trainer targeted is ``stability-ai/sdxl``, Replicate's own SDXL fine-tuner (the inputs of
the ``train.py`` of Replicate's cog-sdxl repository): a LoRA (``is_lora``) on SDXL base 1.0, from a
zip of images plus an optional ``*caption*.csv`` (columns ``image_file``, ``caption``) that
replaces its BLIP auto-captions. It is the trainer on Replicate whose ``train()`` inputs are
public and stable and which trains an SD-family UNet LoRA; the FLUX trainers
(``ostris/flux-dev-lora-trainer``) train a model this project does not run, and no maintained
SD 1.5 LoRA trainer with documented inputs exists there, so an SD 1.x config is refused with
a clear error. :data:`COG_SDXL_INPUTS` is the mapping table (docs/remote_training.md
repeats it); ``training.replicate.extra_input`` adds or overrides inputs.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.training.remote.base import RemoteTrainingError

DEFAULT_TRAINER = "stability-ai/sdxl"
CAPTIONS_NAME = "captions.csv"  # cog-sdxl reads a csv whose name contains "caption"
READ_SUFFIXES = (".png", ".jpg", ".jpeg")  # what cog-sdxl's preprocess picks up
ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed member times: the same folder gives the same zip
NO_CHECKPOINTS = 999_999

# (trainer input, where its value comes from): the table the docs repeat.
COG_SDXL_INPUTS: tuple[tuple[str, str], ...] = (
    ("input_images", "the uploaded dataset zip (files API urls.get)"),
    ("input_images_filetype", '"zip"'),
    ("seed", "seed"),
    ("resolution", "resolution (square crops)"),
    ("train_batch_size", "train_batch_size"),
    ("num_train_epochs", "num_train_epochs"),
    ("max_train_steps", "max_train_steps, else num_train_epochs x ceil(images / batch)"),
    ("is_lora", "true"),
    ("lora_rank", "rank"),
    ("lora_lr", "learning_rate"),
    ("unet_learning_rate", "learning_rate"),
    ("lr_scheduler", "lr_scheduler: constant(_with_warmup) -> constant, the rest -> linear"),
    ("lr_warmup_steps", "lr_warmup_steps"),
    ("crop_based_on_salience", "not center_crop"),
    ("use_face_detection_instead", "false"),
    ("checkpointing_steps", f"{NO_CHECKPOINTS} (no intermediate checkpoints)"),
    ("verbose", "true (progress in the logs)"),
)
# Config fields cog-sdxl has no input for: (what it does, as the config would say it; how).
# The job log names each field whose value differs from what the trainer does.
COG_SDXL_FIXED: dict[str, tuple[Any, str]] = {
    "target_modules": (("to_k", "to_out.0", "to_q", "to_v"), "every attention projection"),
    "train_text_encoder": (False, "text encoders frozen (it trains pivotal-tuning tokens)"),
    "gradient_accumulation_steps": (1, "1"),
    "mixed_precision": ("bf16", "bf16"),
    "use_buckets": (False, "square crops at resolution"),
    "random_flip": (False, "no flip"),
    "noise_offset": (0.0, "0"),
    "snr_gamma": (None, "no Min-SNR weighting"),
    "max_grad_norm": (1.0, "1.0"),
}


def unhonoured(config: LoraTrainingConfig) -> list[str]:
    """Notes on the config values cog-sdxl cannot take (it uses its own)."""
    notes = []
    if config.lora_alpha != float(config.rank):
        notes.append(f"alpha={config.alpha} not an input: trainer uses alpha = rank")
    for name, (does, how) in COG_SDXL_FIXED.items():
        value = getattr(config, name)
        if (tuple(sorted(value)) if name == "target_modules" else value) != does:
            notes.append(f"{name}={value!r} not an input: trainer uses {how}")
    return notes


@dataclass(frozen=True)
class DatasetZip:
    """The zip sent to the trainer: its bytes, sha256 and the number of images inside."""

    data: bytes
    sha256: str
    images: int


def _rows(dataset_dir: Path) -> list[dict[str, Any]]:
    meta = dataset_dir / "metadata.jsonl"
    if not meta.is_file():
        raise RemoteTrainingError(f"{meta} not found: not a training dataset folder")
    rows = [json.loads(line) for line in meta.read_text().splitlines() if line.strip()]
    if not rows:
        raise RemoteTrainingError(f"{meta} lists no images")
    return rows


def _readable(path: Path) -> tuple[str, bytes]:
    """The image's bytes as cog-sdxl reads them: PNG/JPEG as is, anything else as PNG."""
    if path.suffix.lower() in READ_SUFFIXES:
        return path.suffix.lower(), path.read_bytes()
    from PIL import Image

    buffer = io.BytesIO()
    with Image.open(path) as image:
        image.convert("RGB").save(buffer, format="PNG")
    return ".png", buffer.getvalue()


def build_dataset_zip(dataset_dir: Path) -> DatasetZip:
    """Every image of ``metadata.jsonl`` flattened to a unique name, once per repeat (a
    per-character folder's balancing survives), with ``captions.csv`` giving our captions."""
    buffer = io.BytesIO()
    captions: list[tuple[str, str]] = []
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for row in _rows(dataset_dir):
            source = dataset_dir / row["file_name"]
            if not source.is_file():
                raise RemoteTrainingError(f"image {row['file_name']} of the dataset is missing")
            suffix, data = _readable(source)
            stem = str(Path(row["file_name"]).with_suffix("")).replace("/", "__")
            for repeat in range(int(row.get("repeats", 1))):
                name = f"{stem}{f'__r{repeat}' if repeat else ''}{suffix}"
                zf.writestr(zipfile.ZipInfo(name, ZIP_TIME), data)
                captions.append((name, str(row["text"])))
        table = io.StringIO()
        writer = csv.writer(table)
        writer.writerow(["image_file", "caption"])
        writer.writerows(sorted(captions))
        zf.writestr(zipfile.ZipInfo(CAPTIONS_NAME, ZIP_TIME), table.getvalue())
    data = buffer.getvalue()
    return DatasetZip(data, hashlib.sha256(data).hexdigest(), len(captions))


def total_steps(config: LoraTrainingConfig, images: int) -> int:
    """Steps cog-sdxl runs: its ``max_train_steps`` wins over epochs, so always send it."""
    if config.max_train_steps:
        return config.max_train_steps
    return config.num_train_epochs * max(1, math.ceil(images / config.train_batch_size))


def cog_sdxl_input(
    config: LoraTrainingConfig, images_url: str, images: int
) -> tuple[dict[str, Any], list[str]]:
    """The trainer's ``input`` for ``config`` and notes on what it cannot honour."""
    if config.model_family != "sdxl":
        raise RemoteTrainingError(
            f"{DEFAULT_TRAINER} trains SDXL LoRAs; this config is model_family "
            f"{config.model_family!r}: use an SDXL preset (training.preset: sdxl) or the "
            "local or comfyui backend"
        )
    scheduler = "constant" if config.lr_scheduler.startswith("constant") else "linear"
    notes = unhonoured(config)
    if scheduler != config.lr_scheduler:
        notes.append(f"lr_scheduler {config.lr_scheduler} sent as {scheduler} (its choices)")
    inputs = {
        "input_images": images_url,
        "input_images_filetype": "zip",
        "seed": config.seed,
        "resolution": config.resolution,
        "train_batch_size": config.train_batch_size,
        "num_train_epochs": config.num_train_epochs,
        "max_train_steps": total_steps(config, images),
        "is_lora": True,
        "lora_rank": config.rank,
        "lora_lr": config.learning_rate,
        "unet_learning_rate": config.learning_rate,
        "lr_scheduler": scheduler,
        "lr_warmup_steps": config.lr_warmup_steps,
        "crop_based_on_salience": not config.center_crop,
        "use_face_detection_instead": False,
        "checkpointing_steps": NO_CHECKPOINTS,
        "verbose": True,
    }
    return inputs, notes


def trainer_input(
    trainer: str,
    config: LoraTrainingConfig,
    images_url: str,
    images: int,
    extra: dict[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """The ``input`` of a training on ``trainer``; ``extra`` (``extra_input``) wins."""
    if trainer != DEFAULT_TRAINER:
        raise RemoteTrainingError(
            f"no input mapping for the Replicate trainer {trainer!r}; supported: "
            f"{DEFAULT_TRAINER} (training.replicate.trainer)"
        )
    inputs, notes = cog_sdxl_input(config, images_url, images)
    overridden = sorted(set(extra) & set(inputs))
    if overridden:
        notes.append(f"extra_input overrides {', '.join(overridden)}")
    return {**inputs, **extra}, notes
