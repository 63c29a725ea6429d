"""Two tiny LoRA versions published into a local store (a few seconds, nothing downloaded)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from style_pipeline.contracts.training import DatasetBuildConfig
from style_pipeline.models.diffusion import ResolvedDiffusion, resolve_diffusion
from style_pipeline.storage.store import Store
from style_pipeline.training.dataset import build_training_dataset, download_dataset
from style_pipeline.training.presets import PRESETS
from style_pipeline.training.trainer import PublishedLora, train_and_publish
from style_pipeline_tests.training.factories import write_images

PARTITION = "2026-01-01"


@dataclass(frozen=True)
class Published:
    root: Path
    store: Store
    model: ResolvedDiffusion
    cache_dir: Path
    first: PublishedLora
    second: PublishedLora


def publish_two_versions(root: Path) -> Published:
    """The tiny preset trained twice on 2 random images (the second at a higher rate)."""
    cache = root / "diffusion_cache"
    model = resolve_diffusion("tiny", cache_dir=cache)
    paths = write_images(root / "src", [(64, 64), (64, 64)])
    store = Store(root / "storage")
    items = [(str(p), f"sks style, picture {i}", f"frame-{i}") for i, p in enumerate(paths)]
    build_training_dataset(items, store, PARTITION, DatasetBuildConfig(resolution=64))
    dataset = download_dataset(store, PARTITION, root / "dataset")
    first = train_and_publish(store, PARTITION, PRESETS["tiny"], dataset, model)
    faster = PRESETS["tiny"].model_copy(update={"learning_rate": 1e-2})
    second = train_and_publish(store, PARTITION, faster, dataset, model)
    return Published(root, store, model, cache, first, second)
