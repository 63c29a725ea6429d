"""The LoRA training loop: bucketed epochs, accumulation, progress, the outcome.

``train_pipeline`` attaches LoRA adapters to a loaded pipeline (``lora_models.py``), fills
the latent and text caches (``feed.py``), runs the optimisation steps over the training
folder (``data.py``) and saves the weights. Optional monitors: an EMA of the weights
(``ema.py``), a held-out validation loss, validation images and early stop
(``validation.py``); the loss curve is drawn beside the weights (``plots.py``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.utils.deterministic

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.models.device import pick_device
from style_pipeline.storage.store import Store
from style_pipeline.training import data
from style_pipeline.training.caption_augment import CaptionAugment
from style_pipeline.training.checkpoints import Checkpointer, LoopPosition
from style_pipeline.training.ema import LoraEma
from style_pipeline.training.feed import BatchFeed, build_feed
from style_pipeline.training.held_out import split_held_out, validation_feed
from style_pipeline.training.lora_models import attach_lora, save_lora, speed_up
from style_pipeline.training.objective import Optimization, compute_loss
from style_pipeline.training.plots import CURVE_NAME, loss_curve_png
from style_pipeline.training.validation import Validator

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingProgress:
    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    elapsed_s: float
    eta_s: float
    validation_loss: float | None = None  # set on the steps that validated

    def __str__(self) -> str:
        text = (
            f"step {self.step}/{self.total_steps} epoch {self.epoch} loss {self.loss:.5f} "
            f"lr {self.lr:.3g} elapsed {self.elapsed_s:.1f}s eta {self.eta_s:.1f}s"
        )
        if self.validation_loss is not None:
            text += f" validation loss {self.validation_loss:.5f}"
        return text


ProgressCallback = Callable[[TrainingProgress], None]


@dataclass(frozen=True)
class TrainingOutcome:
    weights_path: Path
    steps: int
    epochs: int
    final_loss: float
    losses: tuple[float, ...]
    seconds: float
    device: str
    mixed_precision: str
    family: str
    n_images: int
    lora_parameters: int
    notes: tuple[str, ...] = ()
    cache: dict = field(default_factory=dict)  # BatchFeed.metadata(): hits, misses, bypasses
    determinism: str = ""
    resumed_from_step: int | None = None  # the checkpoint this run continued from
    validation_losses: tuple[tuple[int, float], ...] = ()  # (step, held-out loss)
    best_step: int | None = None  # lowest validation loss (the published one: early stop)
    best_validation_loss: float | None = None
    early_stopped: bool = False
    held_out: tuple[str, ...] = ()  # file names of the validation images
    validation_steps: tuple[int, ...] = ()  # steps with validation images (grid columns)
    validation_seconds: float = 0.0
    ema: bool = False  # the published weights are the EMA of the trained ones
    validation_grid_path: Path | None = None
    loss_curve_path: Path | None = None


def effective_mixed_precision(requested: str, device: torch.device) -> tuple[str, str | None]:
    """Half precision needs a GPU here; on CPU (and MPS) training runs in fp32 and says so."""
    if requested != "no" and device.type != "cuda":
        return "no", f"mixed_precision={requested} ignored on CPU: training in fp32"
    return requested, None


@contextlib.contextmanager
def deterministic_mode(enabled: bool, seed: int) -> Iterator[None]:
    """Seed Python, NumPy and torch; with ``enabled`` also force deterministic kernels.

    torch's debugging aid ``fill_uninitialized_memory`` (NaN-filling every new empty tensor
    in deterministic mode) is switched off: it cost ~7% of a tiny-model CPU step and does
    not change the results of code that never reads uninitialised memory.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    previous_cudnn = torch.backends.cudnn.benchmark
    # torch.utils.deterministic swaps its module class for one with this property; the
    # stubs only see the plain module.
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if enabled:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.utils.deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
        torch.backends.cudnn.benchmark = False
    else:  # let cuDNN time its kernels once per shape (a no-op on CPU)
        torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill  # type: ignore[attr-defined]
        torch.backends.cudnn.benchmark = previous_cudnn


def plan_steps(batches_per_epoch: int, config: LoraTrainingConfig) -> tuple[int, int]:
    """(optimisation steps, epochs) as in the diffusers example: max_train_steps wins."""
    updates_per_epoch = math.ceil(batches_per_epoch / config.gradient_accumulation_steps)
    total = config.max_train_steps or config.num_train_epochs * updates_per_epoch
    return total, math.ceil(total / updates_per_epoch)


def determinism_note(device: torch.device, compiled: bool = False) -> str:
    """Which reproducibility holds for a run on ``device`` under the current torch flags."""
    forced = torch.are_deterministic_algorithms_enabled()
    if device.type != "cuda":
        if forced:
            return (
                f"{device.type}: seeded generators, deterministic algorithms: bit-identical "
                "weights for the same inputs, config, machine type and library versions"
            )
        return f"{device.type}: seeded generators only (deterministic: false)"
    cudnn = torch.backends.cudnn
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG", "unset")
    return (
        f"cuda: seeded generators, use_deterministic_algorithms={forced} (warn only), "
        f"cudnn.deterministic={cudnn.deterministic}, cudnn.benchmark={cudnn.benchmark}, "
        f"CUBLAS_WORKSPACE_CONFIG={workspace}, compiled={compiled}; repeatable at best on "
        "the same GPU model, driver and CUDA/cuDNN versions, not bit-identical across GPUs"
    )


def train_pipeline(
    pipe,
    dataset_dir: Path,
    output_dir: Path,
    config: LoraTrainingConfig,
    progress: ProgressCallback | None = None,
    cache_store: Store | None = None,
) -> TrainingOutcome:
    """Attach LoRA to a loaded ``pipe``, train on ``dataset_dir``, save into ``output_dir``.

    Latents and text states are encoded once per run; with ``cache_store`` they are also
    read from and written to its ``training_dataset/cache/`` (reused across nights).
    """
    device = pick_device(config.device)
    mixed_precision, note = effective_mixed_precision(config.mixed_precision, device)
    notes = [note] if note else []
    if note:
        log.warning(note)
    started = time.perf_counter()
    held_out = split_held_out(
        data.read_training_folder(dataset_dir), config.validation_split, config.seed
    )
    records = held_out.train
    notes += [held_out.note] if held_out.note else []
    step = data.dataset_bucket_step(dataset_dir)
    buckets = data.assign_buckets(records, config.resolution, config.use_buckets, step)
    models = attach_lora(pipe, config, device, mixed_precision)
    if models.family != config.model_family:
        raise ValueError(
            f"config {config.name!r} is for model_family={config.model_family} but the "
            f"pipeline ({type(pipe).__name__}) is {models.family}"
        )
    notes += speed_up(models, config.compile_unet)
    workers = (
        config.dataloader_workers
        if config.dataloader_workers is not None
        else data.default_workers(device)
    )
    feed = build_feed(models, config, dataset_dir, records, buckets, cache_store, workers)
    total, epochs = plan_steps(data.batches_per_epoch(buckets, config.train_batch_size), config)
    optimization = Optimization(models, config, total)
    noise_gen = torch.Generator(device).manual_seed(config.seed)
    data_gen = torch.Generator().manual_seed(config.seed)
    checkpointer = Checkpointer.for_run(cache_store, config, dataset_dir, models)
    ema = LoraEma(models.params, config.ema_decay) if config.ema_decay else None
    held = validation_feed(models, config, dataset_dir, held_out, step, cache_store)
    held_feed, held_jobs = held or (None, [])
    validator = Validator(models, config, pipe, output_dir, held_feed, held_jobs, ema=ema)
    start = checkpointer.resume(models, optimization, noise_gen) if checkpointer else None
    if start is not None:
        note = f"resumed from the checkpoint at step {start.step}/{total}"
        log.info("%s (%s)", note, checkpointer.prefix if checkpointer else "")
        notes.append(note)
        if ema is not None:
            ema.load_state(*start.extras["ema"])
        if "validation" in start.extras:
            validator.load_state(*start.extras["validation"])
    monitors = Monitors(ema, validator if validator.active else None)
    try:
        losses = _loop(
            models, optimization, feed, total, epochs, noise_gen, data_gen, progress,
            checkpointer, start, monitors,
        )  # fmt: skip
    finally:
        feed.close()
        if held_feed is not None:
            held_feed.close()
    kept_step, kept = publish_weights(models, validator, ema)
    if kept:
        notes.append(kept)
    weights = save_lora(models, output_dir)
    early = validator.early
    curve = output_dir / CURVE_NAME
    curve.write_bytes(loss_curve_png(losses, validator.history, kept_step, config.name))
    return TrainingOutcome(
        weights_path=weights,
        steps=len(losses),
        epochs=epochs,
        final_loss=losses[-1],
        losses=tuple(losses),
        seconds=time.perf_counter() - started,
        device=device.type,
        mixed_precision=mixed_precision,
        family=models.family,
        n_images=len(records),
        lora_parameters=models.lora_parameter_count(),
        notes=tuple(notes),
        cache=feed.metadata(),
        determinism=determinism_note(device, models.denoiser is not None),
        resumed_from_step=start.step if start is not None else None,
        validation_losses=tuple(validator.history),
        best_step=early.best_step,
        best_validation_loss=early.best_loss if early.best_step is not None else None,
        early_stopped=monitors.stopped,
        held_out=held_out.names,
        validation_steps=tuple(validator.columns),
        validation_seconds=round(validator.seconds, 3),
        ema=ema is not None,
        validation_grid_path=validator.grid_path,
        loss_curve_path=curve,
    )


@dataclass
class Monitors:
    """What watches the loop: the EMA (updated every step) and the validator."""

    ema: LoraEma | None = None
    validator: Validator | None = None
    stopped: bool = False  # early stop ended the run

    def after_step(self, step: int, total: int) -> float | None:
        """Update the EMA, validate when due; the validation loss of this step, if any."""
        if self.ema is not None:
            self.ema.update()
        if self.validator is None or not self.validator.due(step, total):
            return None
        loss = self.validator.run(step)
        self.stopped = self.validator.stop
        return loss

    def extras(self) -> dict:
        """Their checkpoint state, by name."""
        out = {}
        if self.ema is not None:
            out["ema"] = self.ema.state()
        if self.validator is not None:
            out["validation"] = self.validator.state()
        return out


def publish_weights(
    models, validator: Validator, ema: LoraEma | None
) -> tuple[int | None, str | None]:
    """Put the weights to publish into the model: with early stop, the best validation's
    (EMA ones when on); else the EMA when on; else the trained ones as they are.
    Returns the step whose weights were kept (early stop only) and a note."""
    best = validator.best_weights
    if validator.config.early_stop_patience and best is not None:
        with torch.no_grad():
            for p, w in zip(models.params, best, strict=True):
                p.copy_(w)
        step = validator.early.best_step
        return step, (
            f"published the weights of step {step} (lowest validation loss "
            f"{validator.early.best_loss:.5f})"
        )
    if ema is not None:
        ema.copy_to()
        return None, f"published the EMA of the weights (decay {ema.decay})"
    return None, None


def epoch_jobs(
    feed: BatchFeed, config: LoraTrainingConfig, generator: torch.Generator
) -> list[data.BatchJob]:
    """The epoch's batches and every example's crop, flip and caption augmentation (kohya's
    caption/tag dropout, shuffled tags), drawn from ``generator`` in the order the inline
    loop drew them (batches first, then example by example): a resumed run, which sets the
    generator back to the epoch's start, draws the same ones."""
    batches = data.epoch_batches(feed.buckets, config.train_batch_size, generator)
    captions = CaptionAugment.from_config(config)
    return [
        tuple(
            (
                i,
                data.plan_augment(
                    feed.records[i],
                    feed.buckets[i],
                    config.center_crop,
                    config.random_flip,
                    generator,
                    captions,
                ),
            )
            for i in indices
        )  # fmt: skip
        for indices in batches
    ]


def _loop(
    models,
    optimization,
    feed,
    total,
    epochs,
    noise_gen,
    data_gen,
    progress,
    checkpointer: Checkpointer | None = None,
    start: LoopPosition | None = None,
    monitors: Monitors | None = None,
):
    """Epochs of bucketed batches; one optimisation step per ``gradient_accumulation_steps``.

    With ``start`` (a restored checkpoint) the loop continues at its epoch and batch: the
    data generator is set back to that epoch's start and the epoch's jobs drawn again, the
    batches already used skipped. ``checkpointer`` saves a checkpoint when one is due,
    before ``progress`` hears of the step. ``monitors`` update the EMA and validate after
    each optimisation step (before the checkpoint, which holds their state) and end the
    loop early when early stop says so.
    """
    monitors = monitors or Monitors()
    config = optimization.config
    accumulation = config.gradient_accumulation_steps
    losses: list[float] = list(start.losses) if start else []
    if start is not None:
        data_gen.set_state(start.epoch_data_state)
    started = time.perf_counter()
    done_before = len(losses)
    for epoch in range(start.epoch if start else 0, epochs):
        models.unet.train()
        for te in models.text_encoders if models.train_text_encoder else ():
            te.train()
        epoch_state = data_gen.get_state()
        jobs = epoch_jobs(feed, config, data_gen)
        skip = start.position if start is not None and epoch == start.epoch else 0
        step_loss, micro = 0.0, 0
        for index, batch in enumerate(feed.epoch(jobs[skip:]), start=skip):
            loss = compute_loss(models, batch, config, noise_gen)
            optimization.backward(loss)
            step_loss += loss.detach().item() / accumulation
            micro += 1
            if micro < accumulation and index < len(jobs) - 1:
                continue
            optimization.step()
            losses.append(step_loss)
            validation_loss = monitors.after_step(len(losses), total)
            if checkpointer is not None and checkpointer.due(len(losses), total):
                position = LoopPosition(
                    len(losses), epoch, index + 1, epoch_state, losses, monitors.extras()
                )
                checkpointer.save(models, optimization, noise_gen, position)
            if progress:
                elapsed = time.perf_counter() - started
                eta = elapsed / (len(losses) - done_before) * (total - len(losses))
                lr = optimization.lr
                progress(
                    TrainingProgress(
                        len(losses), total, epoch, step_loss, lr, elapsed, eta, validation_loss
                    )
                )
            step_loss, micro = 0.0, 0
            if len(losses) >= total or monitors.stopped:
                return losses
    return losses
