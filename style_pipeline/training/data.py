"""Read a training folder (``metadata.jsonl``) into tensors for the LoRA loop.

Transforms match diffusers' ``train_text_to_image_lora.py`` (resize, centre/random crop,
optional flip, ``ToTensor``, ``Normalize([0.5], [0.5])``); with buckets each image is resized
to cover its aspect-ratio bucket and cropped to it, and batches never mix buckets.
All randomness comes from one seeded ``torch.Generator`` in the main process: each
example's crop, flip and caption augmentation are drawn there (:func:`plan_augment`), so the
images themselves can be decoded in DataLoader workers (:func:`pixel_loader`) with the same
results as inline. A record may have a loss mask (``<frame>.mask.png``, a grayscale PNG of
the image's size), rendered with the same resize, crop and flip as its image
(:func:`render_mask`), and may be a regularization image (``is_reg``), whose loss
``loss_reduction.reduce_loss`` weighs by ``prior_loss_weight``.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torchvision.transforms import functional as TF

from style_pipeline.training.buckets import Bucket, make_buckets, resize_crop_box, select_bucket
from style_pipeline.training.caption_augment import CaptionAugment, augment_caption


@dataclass(frozen=True)
class TrainingRecord:
    image: Path
    caption: str
    width: int
    height: int
    mask: Path | None = None  # grayscale PNG of the image's size: loss weight per pixel
    is_reg: bool = False  # a regularization image (prior_loss_weight)


@dataclass(frozen=True)
class Example:
    pixel_values: torch.Tensor
    caption: str
    original_size: tuple[int, int]  # (height, width), SDXL micro-conditioning
    crop_top_left: tuple[int, int]  # (top, left)
    mask: torch.Tensor | None = None  # (1, bucket_h, bucket_w) in [0, 1]
    is_reg: bool = False


def read_training_folder(folder: Path) -> list[TrainingRecord]:
    """Records of ``folder/metadata.jsonl`` in file order; errors name the offending line.

    A row with ``repeats`` (a per-character folder) is listed that many times in a row:
    an epoch sees it ``repeats`` times, as kohya sees its ``<repeats>_<name>`` folder.
    A row's ``mask`` (a file next to the image) and ``is_reg`` flag are carried along.
    """
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
        repeats = int(row.get("repeats", 1))
        if repeats < 1:
            raise ValueError(f"{meta}:{number}: repeats must be at least 1, got {repeats}")
        mask = Path(folder) / row["mask"] if row.get("mask") else None
        if mask is not None and not mask.is_file():
            raise FileNotFoundError(f"{meta}:{number}: mask {row['mask']} is missing")
        record = TrainingRecord(
            image, row["text"], width, height, mask, bool(row.get("is_reg", False))
        )
        records += [record] * repeats
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


@dataclass(frozen=True)
class Augment:
    """Where an example is cropped in its resized image (before any flip), the flip, and
    the caption it trains on when augmented (``None``: the record's own)."""

    left: int
    top: int
    flip: bool
    caption: str | None = None


BatchJob = tuple[tuple[int, Augment], ...]  # (record index, augment) of each example


def plan_augment(
    record: TrainingRecord,
    bucket: Bucket,
    center_crop: bool,
    random_flip: bool,
    generator: torch.Generator,
    captions: CaptionAugment | None = None,
) -> Augment:
    """The crop, flip and caption of one example; draws from ``generator`` exactly as the
    transforms of the diffusers example do: crop offsets (random crop only), then the flip,
    then (kohya's options, when any is on) the caption (:func:`augment_caption`)."""
    (new_w, new_h), (left, top, _, _) = resize_crop_box(record.width, record.height, bucket)
    if not center_crop:
        left = int(torch.randint(0, new_w - bucket[0] + 1, (1,), generator=generator))
        top = int(torch.randint(0, new_h - bucket[1] + 1, (1,), generator=generator))
    flip = random_flip and float(torch.rand((), generator=generator)) < 0.5
    if captions is None or not captions.active:
        return Augment(left, top, flip)
    return Augment(left, top, flip, augment_caption(record.caption, captions, generator))


def caption_of(record: TrainingRecord, augment: Augment) -> str:
    """The caption an example trains on: the augmented one, else the record's."""
    return record.caption if augment.caption is None else augment.caption


def crop_top_left(record: TrainingRecord, bucket: Bucket, augment: Augment) -> tuple[int, int]:
    """(top, left) of the crop as SDXL's micro-conditioning sees it (mirrored when flipped)."""
    if not augment.flip:
        return augment.top, augment.left
    new_w = resize_crop_box(record.width, record.height, bucket)[0][0]
    return augment.top, new_w - augment.left - bucket[0]


def render_example(record: TrainingRecord, bucket: Bucket, augment: Augment) -> Example:
    """Pixels in [-1, 1], shape (3, bucket_h, bucket_w), plus SDXL size/crop conditioning."""
    with Image.open(record.image) as img:
        image = img.convert("RGB")
    if image.size != (record.width, record.height):
        raise ValueError(
            f"{record.image}: metadata says {record.width}x{record.height}, "
            f"the image is {image.size[0]}x{image.size[1]}"
        )
    new_size = resize_crop_box(*image.size, bucket)[0]
    image = image.resize(new_size, Image.Resampling.LANCZOS)
    image = image.crop(
        (augment.left, augment.top, augment.left + bucket[0], augment.top + bucket[1])
    )
    if augment.flip:
        image = TF.hflip(image)
    pixels = TF.normalize(TF.to_tensor(image), [0.5], [0.5])
    crop = crop_top_left(record, bucket, augment)
    mask = render_mask(record, bucket, augment) if record.mask is not None else None
    return Example(
        pixels,
        caption_of(record, augment),
        (record.height, record.width),
        crop,
        mask,
        record.is_reg,
    )


def render_mask(record: TrainingRecord, bucket: Bucket, augment: Augment) -> torch.Tensor:
    """The record's mask as its image is rendered (resize, crop, flip), (1, h, w) in [0, 1].

    Bilinear resize, not the image's Lanczos: a weight map must stay within [0, 1].
    """
    if record.mask is None:
        raise ValueError(f"{record.image} has no mask")
    with Image.open(record.mask) as img:
        mask = img.convert("L")
    if mask.size != (record.width, record.height):
        raise ValueError(
            f"{record.mask}: the mask is {mask.size[0]}x{mask.size[1]}, "
            f"the image {record.width}x{record.height}"
        )
    mask = mask.resize(resize_crop_box(*mask.size, bucket)[0], Image.Resampling.BILINEAR)
    mask = mask.crop((augment.left, augment.top, augment.left + bucket[0], augment.top + bucket[1]))
    if augment.flip:
        mask = TF.hflip(mask)
    return TF.to_tensor(mask)


def load_example(
    record: TrainingRecord,
    bucket: Bucket,
    center_crop: bool,
    random_flip: bool,
    generator: torch.Generator,
) -> Example:
    """:func:`plan_augment` then :func:`render_example`: one example, inline."""
    return render_example(
        record, bucket, plan_augment(record, bucket, center_crop, random_flip, generator)
    )


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
    """One batch; ``masks`` (B, 1, h, w) only when an example has one (the others weigh 1
    everywhere), ``is_reg`` only when an example is a regularization image."""
    pixel_values = torch.stack([e.pixel_values for e in examples])
    batch = {
        "pixel_values": pixel_values.to(memory_format=torch.contiguous_format).float(),
        "captions": [e.caption for e in examples],
        "original_sizes": [e.original_size for e in examples],
        "crop_top_lefts": [e.crop_top_left for e in examples],
        "target_size": tuple(pixel_values.shape[-2:]),
    }
    if any(e.mask is not None for e in examples):
        full = torch.ones((1, *pixel_values.shape[-2:]))
        batch["masks"] = torch.stack([full if e.mask is None else e.mask for e in examples])
    if any(e.is_reg for e in examples):
        batch["is_reg"] = torch.tensor([e.is_reg for e in examples])
    return batch


class PixelBatches(torch.utils.data.Dataset):
    """Map-style dataset whose "indices" are :data:`BatchJob` s: one collated batch each.

    Decoding, resizing and cropping are deterministic given the job, so workers give the
    same tensors as the main process.
    """

    def __init__(self, records: Sequence[TrainingRecord], buckets: Sequence[Bucket]):
        self.records = list(records)
        self.buckets = list(buckets)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, job: BatchJob) -> dict:  # type: ignore[override]
        return collate([render_example(self.records[i], self.buckets[i], a) for i, a in job])


class JobSampler(torch.utils.data.Sampler):
    """Yields the jobs it is given; set ``jobs`` before each pass (epoch)."""

    def __init__(self) -> None:
        self.jobs: list[BatchJob] = []

    def __iter__(self) -> Iterator[BatchJob]:
        return iter(self.jobs)

    def __len__(self) -> int:
        return len(self.jobs)


def _unchanged(batch: Any) -> Any:
    return batch


def default_workers(device: torch.device) -> int:
    """0 on CPU (the cores already run the model; worker start-up costs more than it
    saves); on CUDA one decode process per spare core, at most 8."""
    if device.type != "cuda":
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def pixel_loader(
    dataset: PixelBatches, sampler: JobSampler, workers: int, device: torch.device
) -> torch.utils.data.DataLoader:
    """A DataLoader over ``sampler``'s jobs: ``workers`` persistent decode processes,
    pinned memory on CUDA; batches are collated in the workers."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        sampler=sampler,
        num_workers=workers,
        collate_fn=_unchanged,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
