"""Train a LoRA for a partition and publish it as ``lora_weights/<version>/`` in the Store.

``<version>`` is ``<partition>.<NNN>`` (sorts by day, then by run). Each version holds
``pytorch_lora_weights.safetensors`` and ``metadata.json`` (written last: dataset hash,
config hash, seed, sha256 of the weights, steps, losses, model profile, estimates).
Only the newest ``config.keep_versions`` versions are kept, and never the live one.
With ``checkpoint_every_n_steps`` the run saves resumable checkpoints
(``checkpoints.py``): a re-run after a crash continues from the newest one (the version's
``resumed_from_step`` says so), and they are deleted once the version is published
(``keep_checkpoints`` keeps the newest few).
Beside the weights: ``loss_curve.png`` (training loss per step, validation losses, the
kept step) and, with ``validation_prompts``, ``validation_grid.png`` (rows: prompts,
columns: validation steps); ``metadata.json`` names them under ``pictures``.
The VAE latents and frozen text-encoder states of the images are cached in the same Store
(``training_dataset/cache/``), so the next night's training encodes only new images.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
from collections.abc import Callable
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
from style_pipeline.training.checkpoints import prune_run
from style_pipeline.training.data import read_training_folder
from style_pipeline.training.estimates import estimate_resources, is_logged_step
from style_pipeline.training.lora_models import WEIGHT_NAME
from style_pipeline.training.plots import CURVE_NAME, loss_curve_png
from style_pipeline.training.promotion import PromotionError, live_lock, read_live
from style_pipeline.training.train_loop import ProgressCallback, TrainingOutcome, TrainingProgress
from style_pipeline.training.validation import GRID_NAME
from style_pipeline.training.versions import (
    METADATA_NAME,
    list_versions,
    next_version,
    read_metadata,
)

# Re-exported: callers and tests have always found them here.
__all__ = [
    "METADATA_NAME",
    "PublishedLora",
    "dataset_hash_of",
    "list_versions",
    "next_version",
    "prune_versions",
    "read_metadata",
    "train_and_publish",
]
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


def prune_versions(store: Store, keep: int, protect: str | None = None) -> list[str]:
    """Delete all but the newest ``keep`` versions; returns what was deleted.

    Never deleted: ``protect`` (the version just published) and the live version (the
    ``LiveLora`` document). The live lock is held throughout, so a version promoted while
    pruning runs is either seen as live here or refused by ``promote`` as already gone.
    An unreadable live document prunes nothing: it might name any version.
    """
    if keep < 1:
        raise ValueError(f"keep must be at least 1, got {keep}")
    with live_lock(store):
        try:
            live = read_live(store).version
        except PromotionError as exc:
            log.warning("not pruning LoRA versions: %s", exc)
            return []
        versions = list_versions(store)
        doomed = [v for v in versions[:-keep] if v not in (protect, live)]
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


def _logged(
    progress: ProgressCallback | None, log_line: Callable[[str], None] | None, every: int
) -> ProgressCallback | None:
    """``progress`` plus a ``log_line`` of the steps :func:`is_logged_step` picks and of
    every step that validated."""
    if log_line is None:
        return progress

    def on_step(p: TrainingProgress) -> None:
        if progress:
            progress(p)
        if is_logged_step(p.step, p.total_steps, every) or p.validation_loss is not None:
            log_line(str(p))

    return on_step


PATH_FIELDS = ("weights_path", "validation_grid_path", "loss_curve_path")


def store_pictures(
    store: Store, version: str, outcome: TrainingOutcome, title: str
) -> dict[str, str]:
    """Store the run's loss curve (drawn here when the backend made none) and validation
    grid beside its weights; their keys by name."""
    curve_key = layout.lora_version_file(version, CURVE_NAME)
    curve = getattr(outcome, "loss_curve_path", None)
    if curve is not None and Path(curve).is_file():
        store.put_file(Path(curve), curve_key)
    else:  # a remote backend: the curve of the losses it reported
        store.put_bytes(loss_curve_png(outcome.losses, title=title), curve_key)
    keys = {"loss_curve": curve_key}
    grid = getattr(outcome, "validation_grid_path", None)
    if grid is not None and Path(grid).is_file():
        keys["validation_grid"] = layout.lora_version_file(version, GRID_NAME)
        store.put_file(Path(grid), keys["validation_grid"])
    return keys


def train_and_publish(
    store: Store,
    partition: str,
    config: LoraTrainingConfig,
    dataset_dir: Path,
    model: ResolvedDiffusion,
    backend: TrainingBackend | None = None,
    progress: ProgressCallback | None = None,
    log_line: Callable[[str], None] | None = None,
    log_every_n_steps: int = 25,
) -> PublishedLora:
    """Estimate, train, hash and publish one LoRA version, then prune old versions.

    The VRAM/time estimate is logged before training starts: to this module's logger and,
    when given, to ``log_line`` (a Dagster asset passes ``context.log.info``), which then
    gets step 1, every ``log_every_n_steps``-th and the last step; ``progress`` sees every
    step.
    """
    import diffusers
    import peft
    import torch

    backend = backend or LocalDiffusersBackend()
    data_hash = dataset_hash_of(dataset_dir)
    # examples an epoch sees: a per-character row counts its repeats (training.data)
    n_images = len(read_training_folder(Path(dataset_dir)))
    # a remote backend trains on the service's GPU, whatever this machine has
    device = getattr(backend, "estimate_device", None)
    estimate = estimate_resources(config, Path(model.path), n_images, device=device)
    log.info("training estimate: %s", estimate.summary())
    if log_line:
        log_line(f"training estimate: {estimate.summary()}")
    with tempfile.TemporaryDirectory(prefix="lora_") as tmp:
        request = TrainingRequest(Path(dataset_dir), Path(tmp), config, model, cache_store=store)
        outcome = backend.train(request, _logged(progress, log_line, log_every_n_steps))
        if getattr(outcome, "resumed_from_step", None) is not None and log_line:
            log_line(f"training resumed from its checkpoint at step {outcome.resumed_from_step}")
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
            **{k: v for k, v in asdict(outcome).items() if k not in PATH_FIELDS},
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
        metadata["pictures"] = store_pictures(store, version, outcome, config.name)
    metadata_key = layout.lora_version_file(version, METADATA_NAME)
    store.put_bytes(json.dumps(metadata, indent=1).encode(), metadata_key)
    pruned = prune_versions(store, config.keep_versions, protect=version)
    if config.checkpoint_every_n_steps:
        dropped = prune_run(store, config, data_hash, config.keep_checkpoints)
        if dropped:
            log.info("removed %d training checkpoint(s) of the published run", len(dropped))
    return PublishedLora(version, prefix, metadata, tuple(pruned))
