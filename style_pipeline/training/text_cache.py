"""Frozen text-encoder outputs of a training set's captions, encoded once, kept in the Store.

Only when the text encoders are frozen (no text-encoder LoRA): their output for a caption
is then a pure function of the caption, so the loop looks it up instead of running them on
every step. With ``train_text_encoder`` the outputs change with every update and the cache
is bypassed. Stored per caption: ``hidden`` (the UNet's ``encoder_hidden_states`` row) and,
for SDXL, ``pooled``. Keys: ``training_dataset/cache/text/<encoder hash[:16]>/<key[:2]>/
<key>.safetensors``, the key a sha256 of (encoder hash, caption); the encoder hash covers
the encoders' weights and configs, the tokenizers, dtypes, autocast and device type.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import torch

from style_pipeline.storage.store import Store
from style_pipeline.training.lora_models import LoraModels, autocast_context
from style_pipeline.training.objective import encode_captions
from style_pipeline.training.tensor_cache import CacheStats, TensorCache, digest, module_hash

log = logging.getLogger(__name__)
TEXT_BATCH = 32


@dataclass
class CachedText:
    """Text conditioning on the training device, by caption."""

    hidden: dict[str, torch.Tensor]
    pooled: dict[str, torch.Tensor]
    stats: CacheStats
    seconds: float
    persisted: bool

    def batch(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        hidden = torch.stack([self.hidden[c] for c in captions])
        pooled = torch.stack([self.pooled[c] for c in captions]) if self.pooled else None
        return hidden, pooled


def _tokenizer_identity(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)  # fast tokenizers: one JSON
    if backend is not None:
        return digest(type(tokenizer).__name__, tokenizer.model_max_length, backend.to_str())
    ranks: dict = getattr(tokenizer, "bpe_ranks", {})
    merges = sorted(ranks, key=lambda pair: ranks[pair])
    vocab = sorted(tokenizer.get_vocab().items())
    return digest(type(tokenizer).__name__, tokenizer.model_max_length, vocab, merges)


def text_encoder_hash(models: LoraModels) -> str:
    """Identity of everything that decides the text conditioning of a caption."""
    flux: dict[str, Any] = {"t5_length": models.max_sequence_length}
    return module_hash(
        models.text_encoders,
        configs=[_config(te).to_dict() for te in models.text_encoders],
        tokenizers=[_tokenizer_identity(t) for t in models.tokenizers],
        dtype=str(models.weight_dtype),
        autocast=str(models.autocast_dtype),
        device=models.device.type,
        family=models.family,
        **(flux if models.family == "flux" else {}),
    )


def _config(text_encoder: torch.nn.Module) -> Any:
    """A transformers model's config (``nn.Module`` stubs type unknown attributes loosely)."""
    return cast(Any, text_encoder).config


def _spec(models: LoraModels) -> dict:
    if models.family == "flux":  # T5 states (hidden) and CLIP's pooled output
        clip, t5 = (_config(te) for te in models.text_encoders)
        t5_shape = (models.max_sequence_length, t5.d_model)
        return {"hidden": (t5_shape, None), "pooled": ((clip.hidden_size,), None)}
    length = models.tokenizers[0].model_max_length
    if models.family == "sd":
        return {"hidden": ((length, _config(models.text_encoders[0]).hidden_size), None)}
    width = sum(_config(te).hidden_size for te in models.text_encoders)
    pooled = _config(models.text_encoders[-1]).projection_dim
    return {"hidden": ((length, width), None), "pooled": ((pooled,), None)}


def prepare_text(models: LoraModels, captions: list[str], store: Store | None) -> CachedText:
    """Conditioning of every distinct caption: read from ``store``'s cache, the misses
    encoded in batches and written back (without a store: encoded once for this run)."""
    started = time.perf_counter()
    model_hash = text_encoder_hash(models)
    cache = TensorCache(store, "text", model_hash) if store is not None else None
    stats = cache.stats if cache is not None else CacheStats()
    unique = sorted(set(captions))
    keys = {caption: digest(model_hash, caption) for caption in unique}
    found: dict[str, dict[str, torch.Tensor]] = {}
    if cache is not None:
        spec = _spec(models)
        stored = cache.get_many([(keys[c], spec) for c in unique])
        found = {c: t for c, t in zip(unique, stored, strict=True) if t is not None}
    missing = [c for c in unique if c not in found]
    stats.hits, stats.misses = len(found), len(missing)
    for start in range(0, len(missing), TEXT_BATCH):
        chunk = missing[start : start + TEXT_BATCH]
        with torch.no_grad(), autocast_context(models):
            hidden, pooled = encode_captions(models, chunk)
        rows = [
            {"hidden": hidden[i]} | ({"pooled": pooled[i]} if pooled is not None else {})
            for i in range(len(chunk))
        ]
        found.update(zip(chunk, rows, strict=True))
        if cache is not None:
            cache.put_many([(keys[c], row) for c, row in zip(chunk, rows, strict=True)])
    on_device = {c: {k: v.to(models.device) for k, v in t.items()} for c, t in found.items()}
    seconds = time.perf_counter() - started
    log.info("text: %d read from the cache, %d encoded in %.1fs", stats.hits, stats.misses, seconds)
    return CachedText(
        hidden={c: t["hidden"] for c, t in on_device.items()},
        pooled={c: t["pooled"] for c, t in on_device.items() if "pooled" in t},
        stats=stats,
        seconds=seconds,
        persisted=cache is not None,
    )
