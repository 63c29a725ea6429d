"""Train a LoRA for a partition and publish it as ``lora_weights/<version>/`` in the Store.

``<version>`` is ``<partition>.<NNN>`` (sorts by day, then by run). Each version holds
``pytorch_lora_weights.safetensors`` and ``metadata.json`` (written last: dataset hash,
config hash, seed, sha256 of the weights, steps, losses, model profile, estimates).
Only the newest ``config.keep_versions`` versions are kept.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.media.checksum import sha256_file
from style_pipeline.models.diffusion import ResolvedDiffusion
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.training.backends import (
    LocalDiffusersBackend,
    TrainingBackend,
    TrainingRequest,
)
from style_pipeline.training.estimates import estimate_resources
from style_pipeline.training.lora_models import WEIGHT_NAME
from style_pipeline.training.train_loop import ProgressCallback

METADATA_NAME = "metadata.json"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PublishedLora:
    version: str
    prefix: str
    metadata: dict
    pruned: tuple[str, ...]

    @property
    def weights_key(self) -> str:
        return layout.lora_version_file(self.version, WEIGHT_NAME)


def list_versions(store: Store) -> list[str]:
    """Published versions (folders with a metadata.json), oldest first."""
    names = [layout.lora_version_of(key) for key in store.list(layout.LORA_WEIGHTS)]
    return sorted(n for n in names if store.exists(layout.lora_version_file(n, METADATA_NAME)))


def next_version(store: Store, partition: str) -> str:
    """``<partition>.<NNN>`` one past the highest run number of that partition (from 001)."""
    runs = [
        int(key.rsplit(".", 1)[-1])
        for key in (layout.lora_version_of(k) for k in store.list(layout.LORA_WEIGHTS))
        if key.startswith(f"{partition}.") and key.rsplit(".", 1)[-1].isdigit()
    ]
    return f"{partition}.{max(runs, default=0) + 1:03d}"


def read_metadata(store: Store, version: str) -> dict:
    return json.loads(store.read_bytes(layout.lora_version_file(version, METADATA_NAME)))


def prune_versions(store: Store, keep: int, protect: str | None = None) -> list[str]:
    """Delete all but the newest ``keep`` versions (never ``protect``); returns what was deleted."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    versions = list_versions(store)
    doomed = [v for v in versions[:-keep] if v != protect]
    for version in doomed:
        path = store.path(layout.lora_version_dir(version))
        path.fs.rm(path.path, recursive=True)
        log.info("pruned LoRA version %s", version)
    return doomed


def dataset_hash_of(dataset_dir: Path) -> str:
    """The dataset hash from the folder's manifest.json (sha256 of its file list)."""
    manifest = Path(dataset_dir) / "manifest.json"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} missing: build the folder with build_training_dataset")
    return json.loads(manifest.read_text())["dataset_hash"]


def train_and_publish(
    store: Store,
    partition: str,
    config: LoraTrainingConfig,
    dataset_dir: Path,
    model: ResolvedDiffusion,
    backend: TrainingBackend | None = None,
    progress: ProgressCallback | None = None,
) -> PublishedLora:
    """Estimate, train, hash and publish one LoRA version, then prune old versions."""
    import diffusers
    import peft
    import torch

    backend = backend or LocalDiffusersBackend()
    data_hash = dataset_hash_of(dataset_dir)
    n_images = sum(1 for line in (Path(dataset_dir) / "metadata.jsonl").open() if line.strip())
    estimate = estimate_resources(config, Path(model.path), n_images)
    log.info("training estimate: %s", estimate.summary())
    with tempfile.TemporaryDirectory(prefix="lora_") as tmp:
        request = TrainingRequest(Path(dataset_dir), Path(tmp), config, model)
        outcome = backend.train(request, progress)
        weights_sha = sha256_file(outcome.weights_path)
        version = next_version(store, partition)
        prefix = layout.lora_version_dir(version)
        metadata = {
            "version": version,
            "partition": partition,
            "weights": WEIGHT_NAME,
            "sha256": weights_sha,
            "dataset_hash": data_hash,
            "config_hash": config.config_hash(),
            "config": config.model_dump(mode="json"),
            "seed": config.seed,
            "backend": backend.name,
            **{k: v for k, v in asdict(outcome).items() if k != "weights_path"},
            **model.as_metadata(),
            "estimate": estimate.as_metadata(),
            "torch_threads": torch.get_num_threads(),
            "versions": {
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
                "peft": peft.__version__,
                "python": platform.python_version(),
            },
        }
        store.put_file(outcome.weights_path, layout.lora_version_file(version, WEIGHT_NAME))
    metadata_key = layout.lora_version_file(version, METADATA_NAME)
    store.put_bytes(json.dumps(metadata, indent=1).encode(), metadata_key)
    pruned = prune_versions(store, config.keep_versions, protect=version)
    return PublishedLora(version, prefix, metadata, tuple(pruned))
