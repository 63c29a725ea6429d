"""The held-out validation images of a LoRA run and their feed.

:func:`split_held_out` takes ``validation_split`` of the images out of training: by
image, not by repeated record; at least one when the split is above 0 and at least one
left to train on; picked by a permutation drawn from the seed, so the same folder and
seed hold out the same images. Regularization images are never held out.
:func:`validation_feed` serves them centre-cropped and unflipped, one batch each, through
the same latent and text caches as training.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.storage.store import Store
from style_pipeline.training import data
from style_pipeline.training.buckets import Bucket, resize_crop_box
from style_pipeline.training.feed import BatchFeed, build_feed
from style_pipeline.training.lora_models import LoraModels

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeldOut:
    """The training records (repeats kept) and one record per held-out image."""

    train: list[data.TrainingRecord]
    validation: list[data.TrainingRecord]
    note: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.image.name for r in self.validation)


def split_held_out(records: Sequence[data.TrainingRecord], fraction: float, seed: int) -> HeldOut:
    """Hold out ``round(fraction x images)`` images (at least 1, at most all but 1).

    The pick is a permutation of the sorted image paths drawn from its own generator
    seeded with ``seed``: the same folder and seed hold out the same images.
    """
    if fraction <= 0:
        return HeldOut(list(records), [])
    images = sorted({r.image for r in records if not r.is_reg})
    if len(images) < 2:
        note = f"validation_split ignored: {len(images)} image(s), none can be held out"
        log.warning(note)
        return HeldOut(list(records), [], note)
    count = min(max(1, round(fraction * len(images))), len(images) - 1)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
    held = {images[i] for i in order[:count].tolist()}
    first: dict[Path, data.TrainingRecord] = {}
    for r in records:
        if r.image in held:
            first.setdefault(r.image, r)
    validation = [first[image] for image in sorted(held)]
    train = [r for r in records if r.image not in held]
    return HeldOut(train, validation)


def validation_jobs(
    records: Sequence[data.TrainingRecord], buckets: Sequence[Bucket]
) -> list[data.BatchJob]:
    """One batch per held-out image, centre-cropped and unflipped (no draws)."""
    jobs: list[data.BatchJob] = []
    for i, (record, bucket) in enumerate(zip(records, buckets, strict=True)):
        left, top = resize_crop_box(record.width, record.height, bucket)[1][:2]
        jobs.append(((i, data.Augment(left, top, False)),))
    return jobs


def validation_feed(
    models: LoraModels,
    config: LoraTrainingConfig,
    dataset_dir: Path,
    held_out: HeldOut,
    bucket_step: int,
    store: Store | None,
) -> tuple[BatchFeed, list[data.BatchJob]] | None:
    """The held-out images' feed (cached latents and text like training's) and jobs."""
    if not held_out.validation:
        return None
    records = held_out.validation
    buckets = data.assign_buckets(records, config.resolution, config.use_buckets, bucket_step)
    plain = config.model_copy(update={"center_crop": True, "random_flip": False})
    feed = build_feed(models, plain, dataset_dir, records, buckets, store, 0)
    return feed, validation_jobs(records, buckets)
