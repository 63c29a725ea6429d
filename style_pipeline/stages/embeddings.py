"""The ``embeddings`` stage: OpenCLIP image embeddings of the day's frames.

Unit-length float32 vectors (whatever the model's precision), batched (``auto``: from
free GPU memory), decoded in parallel ahead of the forward, cached by (frame sha256,
model id) under ``embedding.cache_prefix`` so a re-run computes nothing new. The model comes from
``load_model`` (pretrained, or the tiny model when allowed and the weights are absent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from style_pipeline.contracts.curation import EmbeddingConfig
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.embeddings import (
    EmbeddingCache,
    ImageRef,
    embed_refs,
    embeddings_frame,
)
from style_pipeline.models import load_model
from style_pipeline.storage.store import Store


@dataclass(frozen=True)
class EmbeddingFacts:
    """What the ``embeddings`` asset reports besides the table."""

    model: Mapping[str, str | int]  # what was asked for and what ran (LoadedModel.metadata)
    fallback_reason: str  # '' unless the tiny model stood in for the pretrained one
    computed: int
    cached: int
    unreadable: tuple[str, ...] = ()  # cache keys that could not be read (recomputed)
    loading: Mapping[str, str | int] = field(default_factory=dict)  # batch size, decode path


def embed_partition(
    frames: pl.DataFrame, store: Store, model: ModelConfig, config: EmbeddingConfig
) -> tuple[pl.DataFrame, EmbeddingFacts]:
    """``embeddings`` rows (cached by frame sha256 and model id) and facts for metadata."""
    loaded = load_model(model)
    refs = [ImageRef(sha, key) for sha, key in zip(frames["sha256"], frames["path"], strict=True)]
    cache = EmbeddingCache(store, loaded.model_id, loaded.dim, prefix=config.cache_prefix)
    result = embed_refs(
        loaded,
        refs,
        store,
        cache,
        config.batch_size,
        workers=config.decode_workers,
        draft=config.jpeg_draft,
        gpu_decode=config.gpu_decode,
        prefetch_batches=config.prefetch_batches,
        forward_threads=config.forward_threads,
    )
    table = embeddings_frame(frames["frame_id"].to_list(), refs, result.vectors, loaded)
    facts = EmbeddingFacts(
        model=loaded.metadata(),
        fallback_reason=loaded.fallback_reason or "",
        computed=result.n_computed,
        cached=result.n_cached,
        unreadable=result.unreadable,
        loading={"batch_size": result.batch_size, "decode": result.decode},
    )
    return table, facts
