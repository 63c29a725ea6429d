"""Validation during LoRA training: a held-out split, its loss, images of fixed prompts and
early stop.

- ``held_out.py``: ``validation_split`` of the images (by image, chosen from the seed)
  leave the training set and form the validation feed.
- :class:`Validator`: every ``validation_every_n_steps`` steps and after the last one,
  the loss of the held-out images with *fixed* noise, timesteps and VAE samples (its own
  generator, seeded with ``validation_seed`` afresh at each validation, so every point
  of the curve sees the same draws), in eval mode without gradients; and the
  ``validation_prompts`` rendered by the live pipeline (its denoiser carries the LoRA
  adapters in place), collected into one grid (rows: prompts, columns: steps) written
  to ``validation_grid.png`` after each validation.
- :class:`EarlyStop`: stops after ``early_stop_patience`` validations in a row without
  a loss lower than the best by ``early_stop_min_delta``; the best validation's weights
  are kept (:attr:`Validator.best_weights`) and published.

Nothing here draws from the training generators or the global RNGs (the pipeline call
runs inside ``torch.random.fork_rng``): a run with validation images trains the same
weights as one without.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from style_pipeline.contracts.training import LoraTrainingConfig
from style_pipeline.media.pictures import png_bytes, sample_grid
from style_pipeline.training import data
from style_pipeline.training.ema import LoraEma
from style_pipeline.training.feed import BatchFeed
from style_pipeline.training.lora_models import LoraModels, autocast_context
from style_pipeline.training.objective import compute_loss

log = logging.getLogger(__name__)
GRID_NAME = "validation_grid.png"
GRID_EDGE = 128  # px of a grid cell (small samples are enlarged with hard pixel edges)
GRID_COLUMNS = 12  # most steps a grid shows: evenly spaced, the first and last always


@dataclass
class EarlyStop:
    """Counts validations without improvement; ``patience`` 0 never stops."""

    patience: int
    min_delta: float
    best_loss: float = math.inf
    best_step: int | None = None
    bad: int = 0

    def observe(self, step: int, loss: float) -> bool:
        """Record a validation loss; True when it is the new best."""
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_step, self.bad = loss, step, 0
            return True
        self.bad += 1
        return False

    @property
    def stop(self) -> bool:
        return self.patience > 0 and self.bad >= self.patience


@contextlib.contextmanager
def evaluating(models: LoraModels) -> Iterator[None]:
    """Eval mode and no gradients for the block; each module's mode restored after."""
    modules = [models.unet, *models.text_encoders]
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def _rng_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


@dataclass
class Validator:
    """Validation of one run: the loss curve, the image grid and early stop."""

    models: LoraModels
    config: LoraTrainingConfig
    pipe: Any  # the diffusers pipeline the adapters were attached to
    output_dir: Path
    feed: BatchFeed | None = None  # the held-out images (None: no split)
    jobs: list[data.BatchJob] = field(default_factory=list)
    ema: LoraEma | None = None
    history: list[tuple[int, float]] = field(default_factory=list)
    columns: list[int] = field(default_factory=list)  # steps with images
    images: list[list[Image.Image]] = field(default_factory=list)  # [column][prompt]
    best_weights: list[torch.Tensor] | None = None
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.early = EarlyStop(self.config.early_stop_patience, self.config.early_stop_min_delta)

    @property
    def active(self) -> bool:
        return self.feed is not None or bool(self.config.validation_prompts)

    def due(self, step: int, total: int) -> bool:
        every = self.config.validation_every_n_steps
        return self.active and (step >= total or (every > 0 and step % every == 0))

    @property
    def grid_path(self) -> Path | None:
        path = self.output_dir / GRID_NAME
        return path if self.columns and path.is_file() else None

    def run(self, step: int) -> float | None:
        """Validate the weights as they are after ``step`` (the EMA ones when on)."""
        started = time.perf_counter()
        swap = self.ema.applied() if self.ema is not None else contextlib.nullcontext()
        loss = None
        with swap, evaluating(self.models):
            if self.feed is not None:
                loss = self._loss()
                self.history.append((step, loss))
                if self.early.observe(step, loss) and self.config.early_stop_patience:
                    self.best_weights = [p.detach().clone() for p in self.models.params]
            if self.config.validation_prompts:
                self.columns.append(step)
                self.images.append(self._render())
                self.write_grid()
        self.seconds += time.perf_counter() - started
        if loss is not None:
            log.info(
                "validation at step %d: loss %.5f (best %.5f at step %s)",
                step, loss, self.early.best_loss, self.early.best_step,
            )  # fmt: skip
        return loss

    @property
    def stop(self) -> bool:
        return self.early.stop

    def _loss(self) -> float:
        assert self.feed is not None
        generator = torch.Generator(self.models.device).manual_seed(self.config.validation_seed)
        total, count = 0.0, 0
        for batch in self.feed.epoch(self.jobs):
            n = len(batch["captions"])
            total += compute_loss(self.models, batch, self.config, generator).item() * n
            count += n
        return total / count

    def _render(self) -> list[Image.Image]:
        """One image per prompt from the pipeline with the adapters in place; each prompt
        starts from the same seeded noise at every validation."""
        config = self.config
        self.pipe.set_progress_bar_config(disable=True)
        extra = {}
        if config.validation_guidance_scale is not None:
            extra["guidance_scale"] = config.validation_guidance_scale
        out = []
        with torch.random.fork_rng(devices=_rng_devices(self.models.device)):
            for prompt in config.validation_prompts:
                with autocast_context(self.models):
                    result = self.pipe(
                        prompt=prompt,
                        num_inference_steps=config.validation_inference_steps,
                        height=config.resolution,
                        width=config.resolution,
                        generator=torch.Generator("cpu").manual_seed(config.validation_seed),
                        **extra,
                    )
                image = result.images[0].convert("RGB")
                image.thumbnail((GRID_EDGE, GRID_EDGE))
                out.append(image)
        return out

    def grid(self) -> Image.Image:
        """Rows: prompts; columns: the validations (at most ``GRID_COLUMNS``, evenly spaced)."""
        picks = _spread(len(self.columns), GRID_COLUMNS)
        cells = [[self.images[c][r] for c in picks] for r in range(len(self.images[0]))]
        labels = [f"step {self.columns[c]}" for c in picks]
        title = f"{self.config.name}: validation prompts by step"
        return sample_grid(cells, list(self.config.validation_prompts), labels, GRID_EDGE, title)

    def write_grid(self) -> Path:
        path = self.output_dir / GRID_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(self.grid()))
        return path

    # checkpoints ------------------------------------------------------------------------
    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON part, tensors) for a checkpoint: history, early stop, best weights, images."""
        tensors: dict[str, torch.Tensor] = {}
        if self.best_weights is not None:
            for i, w in enumerate(self.best_weights):
                tensors[f"best/{i}"] = w.detach().to("cpu", copy=True).contiguous()
        for c, column in enumerate(self.images):
            for r, image in enumerate(column):
                tensors[f"image/{c}/{r}"] = torch.from_numpy(np.asarray(image).copy())
        saved = {
            "history": [[s, v] for s, v in self.history],
            "best_loss": self.early.best_loss if math.isfinite(self.early.best_loss) else None,
            "best_step": self.early.best_step,
            "bad": self.early.bad,
            "columns": self.columns,
            "prompts": list(self.config.validation_prompts),
            "seconds": self.seconds,
        }
        return saved, tensors

    def load_state(self, saved: dict, tensors: dict[str, torch.Tensor]) -> None:
        self.history = [(int(s), float(v)) for s, v in saved["history"]]
        best = saved["best_loss"]
        self.early.best_loss = math.inf if best is None else float(best)
        self.early.best_step, self.early.bad = saved["best_step"], int(saved["bad"])
        self.seconds = float(saved.get("seconds", 0.0))
        device = self.models.device
        if any(k.startswith("best/") for k in tensors):
            self.best_weights = [
                tensors[f"best/{i}"].to(device) for i in range(len(self.models.params))
            ]
        if saved["prompts"] == list(self.config.validation_prompts):  # else: a new grid
            self.columns = [int(s) for s in saved["columns"]]
            self.images = [
                [
                    Image.fromarray(tensors[f"image/{c}/{r}"].numpy())
                    for r in range(len(saved["prompts"]))
                ]
                for c in range(len(self.columns))
            ]


def _spread(n: int, most: int) -> list[int]:
    """Up to ``most`` indices of ``range(n)``, evenly spaced, first and last included."""
    if n <= most:
        return list(range(n))
    return sorted({round(i * (n - 1) / (most - 1)) for i in range(most)})
