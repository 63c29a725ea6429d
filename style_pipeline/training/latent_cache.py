"""VAE latents of a training set: encoded once per (image, bucket, flip), kept in the Store.

Stored is the VAE posterior, ``latent_dist.parameters`` (mean and log-variance stacked on
the channel axis, in the dtype the VAE computed them), not a sample of it. The loop draws
the sample from its seeded noise generator exactly as the uncached loop does
(``DiagonalGaussianDistribution(parameters).sample(generator)``), so:

- a run that reads every latent from the cache and one that encoded them give the same
  random draws and bit-identical weights (the CPU determinism test trains twice into one
  store: cold, then warm);
- each epoch still sees a fresh VAE sample, as in diffusers' example (a stored sample would
  freeze that noise for every epoch and every night).

Keys: ``training_dataset/cache/latents/<vae hash[:16]>/<key[:2]>/<key>.safetensors``, the
key a sha256 of (VAE hash, image content sha256, bucket, crop box, flip). The VAE hash
covers the encoder's weights and config, the dtypes it runs in (autocast included), the
device type and the pixel preprocessing. Random crops change every epoch: not cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch

from style_pipeline.storage.store import Store
from style_pipeline.training import data
from style_pipeline.training.buckets import Bucket, resize_crop_box
from style_pipeline.training.lora_models import LoraModels, autocast_context
from style_pipeline.training.tensor_cache import CacheStats, TensorCache, digest, module_hash

log = logging.getLogger(__name__)
# Changing the pixel pipeline of data.render_example must change this string.
PREPROCESS = "pil-lanczos-cover-crop/torchvision-to_tensor/normalize-0.5-0.5"
MOMENTS = "moments"


@dataclass
class CachedLatents:
    """Posterior parameters on the training device, by (record index, flip)."""

    moments: dict[tuple[int, bool], torch.Tensor]
    stats: CacheStats
    seconds: float
    persisted: bool

    def batch(self, job: data.BatchJob) -> torch.Tensor:
        return torch.stack([self.moments[(i, a.flip)] for i, a in job])


def image_hashes(dataset_dir: Path, records: list[data.TrainingRecord]) -> list[str]:
    """Content sha256 of each record's image: from ``manifest.json`` (checked when the
    folder was downloaded), else hashed from the file."""
    manifest = Path(dataset_dir) / "manifest.json"
    known: dict[str, str] = {}
    if manifest.is_file():
        known = {f["path"]: f["sha256"] for f in json.loads(manifest.read_text())["files"]}
    hashes = []
    for record in records:
        rel = record.image.relative_to(dataset_dir).as_posix()
        hashes.append(known.get(rel) or hashlib.sha256(record.image.read_bytes()).hexdigest())
    return hashes


def vae_hash(models: LoraModels) -> str:
    """Identity of everything that decides the posterior of a preprocessed image."""
    vae = models.vae
    return module_hash(
        [vae],
        ("encoder.", "quant_conv."),
        config=dict(vae.config),
        dtype=str(vae.dtype),
        autocast=str(models.autocast_dtype),
        device=models.device.type,
        slicing_tiling=(getattr(vae, "use_slicing", False), getattr(vae, "use_tiling", False)),
        preprocess=PREPROCESS,
    )


def encode_moments(models: LoraModels, pixel_values: torch.Tensor) -> torch.Tensor:
    """Posterior parameters of a batch of pixels, without autograd, under training autocast."""
    pixels = pixel_values.to(models.device, dtype=models.vae.dtype, non_blocking=True)
    with torch.no_grad(), autocast_context(models):
        return models.vae.encode(pixels).latent_dist.parameters


def _spec(models: LoraModels, bucket: Bucket) -> dict:
    factor = 2 ** (len(models.vae.config["block_out_channels"]) - 1)
    channels = 2 * models.vae.config["latent_channels"]
    return {MOMENTS: ((channels, bucket[1] // factor, bucket[0] // factor), None)}


def prepare_latents(
    models: LoraModels,
    records: list[data.TrainingRecord],
    buckets: list[Bucket],
    image_shas: list[str],
    flips: tuple[bool, ...],
    store: Store | None,
    workers: int,
    batch_size: int,
) -> CachedLatents:
    """Posterior of every (record, flip) at its bucket's centre crop: read from ``store``'s
    cache, the misses encoded in batches of ``batch_size`` (one bucket per batch, images
    decoded by ``workers`` processes) and written back. Without a store they are encoded
    once for this run only."""
    started = time.perf_counter()
    model_hash = vae_hash(models)
    cache = TensorCache(store, "latents", model_hash) if store is not None else None
    stats = cache.stats if cache is not None else CacheStats()
    keys: dict[tuple[int, bool], str] = {}
    for index, (record, bucket, sha) in enumerate(zip(records, buckets, image_shas, strict=True)):
        box = resize_crop_box(record.width, record.height, bucket)[1]
        for flip in flips:
            keys[(index, flip)] = digest(model_hash, sha, bucket, box, flip)
    unique = sorted(set(keys.values()))
    first = {entry: wanted for wanted, entry in reversed(keys.items())}
    found: dict[str, torch.Tensor] = {}
    if cache is not None:
        specs = [(e, _spec(models, buckets[first[e][0]])) for e in unique]
        for entry, tensors in zip(unique, cache.get_many(specs), strict=True):
            if tensors is not None:
                found[entry] = tensors[MOMENTS].to(models.device, non_blocking=True)
    missing = [e for e in unique if e not in found]
    stats.hits, stats.misses = len(found), len(missing)
    found.update(_encode(models, records, buckets, missing, first, cache, workers, batch_size))
    moments = {wanted: found[entry] for wanted, entry in keys.items()}
    seconds = time.perf_counter() - started
    log.info(
        "latents: %d read from the cache, %d encoded in %.1fs", stats.hits, stats.misses, seconds
    )
    return CachedLatents(moments, stats, seconds, persisted=cache is not None)


def _encode(models, records, buckets, missing, first, cache, workers, batch_size):
    """Encode the ``missing`` entries, bucket by bucket; write each batch as it finishes."""
    by_bucket: dict[Bucket, list[str]] = defaultdict(list)
    for entry in missing:
        by_bucket[buckets[first[entry][0]]].append(entry)
    chunks = [
        entries[start : start + batch_size]
        for _, entries in sorted(by_bucket.items())
        for start in range(0, len(entries), batch_size)
    ]
    if not chunks:
        return {}
    sampler = data.JobSampler()
    sampler.jobs = [tuple(_center_job(records, buckets, first[e]) for e in c) for c in chunks]
    loader = data.pixel_loader(data.PixelBatches(records, buckets), sampler, workers, models.device)
    encoded: dict[str, torch.Tensor] = {}
    for chunk, batch in zip(chunks, loader, strict=True):
        params = encode_moments(models, batch["pixel_values"])
        encoded.update(zip(chunk, params, strict=True))
        if cache is not None:
            cache.put_many([(e, {MOMENTS: p}) for e, p in zip(chunk, params, strict=True)])
    return encoded


def _center_job(records, buckets, wanted: tuple[int, bool]) -> tuple[int, data.Augment]:
    index, flip = wanted
    record, bucket = records[index], buckets[index]
    left, top = resize_crop_box(record.width, record.height, bucket)[1][:2]
    return index, data.Augment(left, top, flip)
