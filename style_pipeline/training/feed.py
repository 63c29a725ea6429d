"""Batches for the LoRA loop: each epoch's jobs (record indices + augments) as model inputs.

:func:`build_feed` decides, once per run, where the inputs come from: cached VAE
posteriors (``latent_cache.py``) or pixels decoded by a DataLoader, and cached text states
(``text_cache.py``) or captions encoded in the loss. With cached latents a batch is
assembled in the main process from tensors already on the device: no image is decoded and
the VAE never runs during the steps. Loss masks come along: rendered with the pixels, or,
with cached latents, rendered once per (image, flip) at latent size. With kohya's caption
options the captions change per example: caption dropout alone adds ``""`` to the text
cache; shuffled or dropped tags make every step's captions new, and the text cache is
bypassed (the reason is in the run's cache metadata).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.storage.store import Store
from style_pipeline.training import data
from style_pipeline.training.buckets import Bucket, resize_crop_box
from style_pipeline.training.caption_augment import CaptionAugment, possible_captions
from style_pipeline.training.latent_cache import CachedLatents, image_hashes, prepare_latents
from style_pipeline.training.lora_models import LoraModels
from style_pipeline.training.masks import downsample_mask
from style_pipeline.training.text_cache import CachedText, prepare_text

log = logging.getLogger(__name__)


@dataclass
class BatchFeed:
    records: list[data.TrainingRecord]
    buckets: list[Bucket]
    workers: int
    device: torch.device
    latents: CachedLatents | None = None
    text: CachedText | None = None
    masks: dict[tuple[int, bool], torch.Tensor] = field(default_factory=dict)  # latent size
    masked_loss: bool = False
    reasons: dict[str, str] = field(default_factory=dict)  # why a cache is not used
    _sampler: data.JobSampler = field(default_factory=data.JobSampler)
    _loader: torch.utils.data.DataLoader | None = None

    def epoch(self, jobs: list[data.BatchJob]) -> Iterator[dict]:
        """One model-ready batch per job, in order."""
        if self.latents is not None:
            batches: Iterator[dict] = (self._from_cache(job) for job in jobs)
        else:
            self._sampler.jobs = jobs
            if self._loader is None:
                dataset = data.PixelBatches(self.records, self.buckets)
                self._loader = data.pixel_loader(dataset, self._sampler, self.workers, self.device)
            batches = iter(self._loader)
        for batch in batches:
            if self.text is not None:
                batch["hidden"], batch["pooled"] = self.text.batch(batch["captions"])
            yield batch

    def _from_cache(self, job: data.BatchJob) -> dict:
        assert self.latents is not None
        records = [self.records[i] for i, _ in job]
        bucket = self.buckets[job[0][0]]
        moments = self.latents.batch(job)
        batch: dict = {
            "moments": moments,
            "captions": [data.caption_of(r, a) for r, (_, a) in zip(records, job, strict=True)],
            "original_sizes": [(r.height, r.width) for r in records],
            "crop_top_lefts": [
                data.crop_top_left(r, bucket, a) for r, (_, a) in zip(records, job, strict=True)
            ],
            "target_size": (bucket[1], bucket[0]),
        }
        if self.masks and any((i, a.flip) in self.masks for i, a in job):
            full = torch.ones((1, *moments.shape[-2:]), device=self.device)
            batch["masks"] = torch.stack([self.masks.get((i, a.flip), full) for i, a in job])
        if any(r.is_reg for r in records):
            batch["is_reg"] = torch.tensor([r.is_reg for r in records])
        return batch

    def close(self) -> None:
        """Stop the decode workers (persistent ones live as long as the loader)."""
        self._loader = None

    def metadata(self) -> dict:
        """Hits, misses and bypass reasons of both caches, for the run's metadata."""
        out: dict = {"dataloader_workers": self.workers}
        if self.masked_loss:
            masked = len({r.image for r in self.records if r.mask is not None})
            out["masks"] = {"images": masked, "cached": bool(self.masks)}
        for name, cached in (("latents", self.latents), ("text", self.text)):
            if cached is None:
                out[name] = {"used": False, "reason": self.reasons.get(name, "")}
            else:
                out[name] = {
                    "used": True,
                    "persisted": cached.persisted,
                    **cached.stats.as_metadata(),
                    "seconds": round(cached.seconds, 3),
                }
        return out


def build_feed(
    models: LoraModels,
    config: LoraTrainingConfig,
    dataset_dir: Path,
    records: list[data.TrainingRecord],
    buckets: list[Bucket],
    store: Store | None,
    workers: int,
) -> BatchFeed:
    """Fill the caches the config allows (reading ``store``'s, writing the misses back)."""
    feed = BatchFeed(records, buckets, workers, models.device, masked_loss=config.masked_loss)
    if config.masked_loss and not any(r.mask is not None for r in records):
        log.warning("masked_loss is on but no image has a mask: every pixel weighs 1")
    if not config.cache_latents:
        feed.reasons["latents"] = "cache_latents is off"
    elif not config.center_crop:
        feed.reasons["latents"] = "random crops (center_crop: false) change every epoch"
    else:
        flips = (False, True) if config.random_flip else (False,)
        shas = image_hashes(dataset_dir, records)
        feed.latents = prepare_latents(
            models, records, buckets, shas, flips, store, workers, config.train_batch_size
        )
        if config.masked_loss:
            feed.masks = latent_masks(models, records, buckets, flips)
    captions = possible_captions([r.caption for r in records], CaptionAugment.from_config(config))
    if not config.cache_text_embeddings:
        feed.reasons["text"] = "cache_text_embeddings is off"
    elif models.train_text_encoder:
        feed.reasons["text"] = "train_text_encoder: the text encoders change every step"
    elif captions is None:
        feed.reasons["text"] = (
            "shuffle_tags / caption_tag_dropout_rate: the captions change every step"
        )
    else:
        feed.text = prepare_text(models, captions, store)
    for name, reason in feed.reasons.items():
        log.info("%s cache not used: %s", name, reason)
    return feed


def latent_factor(models: LoraModels) -> int:
    """How many pixels one latent pixel spans (8 for the SD VAEs)."""
    return 2 ** (len(models.vae.config["block_out_channels"]) - 1)


def latent_masks(
    models: LoraModels,
    records: list[data.TrainingRecord],
    buckets: list[Bucket],
    flips: tuple[bool, ...],
) -> dict[tuple[int, bool], torch.Tensor]:
    """The mask of every masked (record, flip) at its bucket's centre crop, at latent size,
    on the training device: what the pixel path's batch would bring, downsampled the same
    way ``loss_reduction.reduce_loss`` does."""
    factor = latent_factor(models)
    masks: dict[tuple[int, bool], torch.Tensor] = {}
    rendered: dict[tuple[object, Bucket, bool], torch.Tensor] = {}
    for index, (record, bucket) in enumerate(zip(records, buckets, strict=True)):
        if record.mask is None:
            continue
        left, top = resize_crop_box(record.width, record.height, bucket)[1][:2]
        for flip in flips:
            key = (record.mask, bucket, flip)  # repeats list a record several times
            if key not in rendered:
                full = data.render_mask(record, bucket, data.Augment(left, top, flip))
                size = (bucket[1] // factor, bucket[0] // factor)
                rendered[key] = downsample_mask(full, size).to(models.device)
            masks[(index, flip)] = rendered[key]
    return masks
