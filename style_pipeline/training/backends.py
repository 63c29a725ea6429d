"""Training backends: one interface, with the local diffusers + PEFT backend implemented.

A backend turns a training folder, a config and a pipeline folder into a LoRA safetensors
file in ``output_dir``. Remote backends (a GPU service) implement the same Protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.models.diffusion import ResolvedDiffusion, load_pipeline
from style_pipeline.storage.store import Store
from style_pipeline.training.train_loop import (
    ProgressCallback,
    TrainingOutcome,
    deterministic_mode,
    train_pipeline,
)


@dataclass(frozen=True)
class TrainingRequest:
    dataset_dir: Path
    output_dir: Path
    config: LoraTrainingConfig
    model: ResolvedDiffusion
    cache_store: Store | None = None  # where the latent/text caches live (None: this run only)


class TrainingBackend(Protocol):
    """Anything that can train a LoRA for a :class:`TrainingRequest`."""

    name: str

    def train(
        self, request: TrainingRequest, progress: ProgressCallback | None = None
    ) -> TrainingOutcome: ...


class LocalDiffusersBackend:
    """Trains in this process with diffusers + PEFT (CPU or a local GPU)."""

    name = "local-diffusers"

    def train(
        self, request: TrainingRequest, progress: ProgressCallback | None = None
    ) -> TrainingOutcome:
        config = request.config
        with deterministic_mode(config.deterministic, config.seed):
            pipe = load_pipeline(request.model.path)
            return train_pipeline(
                pipe, request.dataset_dir, request.output_dir, config, progress,
                cache_store=request.cache_store,
            )  # fmt: skip
