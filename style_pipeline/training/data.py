"""Read a training folder (``metadata.jsonl``) into tensors for the LoRA loop.

Transforms match diffusers' ``train_text_to_image_lora.py`` (resize, centre/random crop,
optional flip, ``ToTensor``, ``Normalize([0.5], [0.5])``); with buckets each image is resized
to cover its aspect-ratio bucket and cropped to it, and batches never mix buckets.
All randomness comes from one seeded ``torch.Generator``.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms import functional as TF

from style_pipeline.training.buckets import Bucket, make_buckets, resize_crop_box, select_bucket


@dataclass(frozen=True)
class TrainingRecord:
    image: Path
    caption: str
    width: int
    height: int


@dataclass(frozen=True)
class Example:
    pixel_values: torch.Tensor
    caption: str
    original_size: tuple[int, int]  # (height, width), SDXL micro-conditioning
    crop_top_left: tuple[int, int]  # (top, left)


def read_training_folder(folder: Path) -> list[TrainingRecord]:
    """Records of ``folder/metadata.jsonl`` in file order; errors name the offending line."""
    meta = Path(folder) / "metadata.jsonl"
    if not meta.is_file():
        raise FileNotFoundError(f"{meta} not found: not a training dataset folder")
    records = []
    for number, line in enumerate(meta.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        image = Path(folder) / row["file_name"]
        if not image.is_file():
            raise FileNotFoundError(f"{meta}:{number}: image {row['file_name']} is missing")
        if "width" in row and "height" in row:
            width, height = int(row["width"]), int(row["height"])
        else:  # a plain imagefolder metadata.jsonl (file_name + text only)
            with Image.open(image) as img:
                width, height = img.size
        records.append(TrainingRecord(image, row["text"], width, height))
    if not records:
        raise ValueError(f"{meta} lists no images")
    return records


def dataset_bucket_step(folder: Path, default: int = 64) -> int:
    """The bucket grid step the dataset was built with (``manifest.json``), else ``default``."""
    manifest = Path(folder) / "manifest.json"
    if not manifest.is_file():
        return default
    return int(json.loads(manifest.read_text()).get("config", {}).get("bucket_step", default))


def assign_buckets(
    records: list[TrainingRecord], resolution: int, use_buckets: bool, step: int = 64
) -> list[Bucket]:
    """Training size of every record: its kohya bucket, or the square ``resolution``."""
    if not use_buckets:
        return [(resolution, resolution)] * len(records)
    buckets = make_buckets(resolution, step=min(step, resolution))
    return [select_bucket(r.width, r.height, buckets) for r in records]


def load_example(
    record: TrainingRecord,
    bucket: Bucket,
    center_crop: bool,
    random_flip: bool,
    generator: torch.Generator,
) -> Example:
    """Pixels in [-1, 1], shape (3, bucket_h, bucket_w), plus SDXL size/crop conditioning."""
    with Image.open(record.image) as img:
        image = img.convert("RGB")
    (new_w, new_h), (left, top, right, bottom) = resize_crop_box(*image.size, bucket)
    if not center_crop:
        left = int(torch.randint(0, new_w - bucket[0] + 1, (1,), generator=generator))
        top = int(torch.randint(0, new_h - bucket[1] + 1, (1,), generator=generator))
    image = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
    image = image.crop((left, top, left + bucket[0], top + bucket[1]))
    if random_flip and float(torch.rand((), generator=generator)) < 0.5:
        image = TF.hflip(image)
        left = new_w - left - bucket[0]
    pixels = TF.normalize(TF.to_tensor(image), [0.5], [0.5])
    return Example(pixels, record.caption, (record.height, record.width), (top, left))


def epoch_batches(
    buckets: list[Bucket], batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """Shuffled batches of indices; each batch holds one bucket only (the last may be short)."""
    groups: dict[Bucket, list[int]] = defaultdict(list)
    for index, bucket in enumerate(buckets):
        groups[bucket].append(index)
    batches: list[list[int]] = []
    for bucket in sorted(groups):
        members = groups[bucket]
        order = torch.randperm(len(members), generator=generator).tolist()
        shuffled = [members[i] for i in order]
        batches += [shuffled[i : i + batch_size] for i in range(0, len(shuffled), batch_size)]
    order = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in order]


def batches_per_epoch(buckets: list[Bucket], batch_size: int) -> int:
    counts: dict[Bucket, int] = defaultdict(int)
    for bucket in buckets:
        counts[bucket] += 1
    return sum(math.ceil(n / batch_size) for n in counts.values())


def collate(examples: list[Example]) -> dict:
    pixel_values = torch.stack([e.pixel_values for e in examples])
    return {
        "pixel_values": pixel_values.to(memory_format=torch.contiguous_format).float(),
        "captions": [e.caption for e in examples],
        "original_sizes": [e.original_size for e in examples],
        "crop_top_lefts": [e.crop_top_left for e in examples],
    }
