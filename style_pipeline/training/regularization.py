"""Regularization (prior-preservation) images for a training folder, kohya-style.

kohya sd-scripts reads them from ``--reg_data_dir``: ``<repeats>_<class>/`` folders of
images of the class without the subject (DreamBooth's prior preservation), trained next to
the subject's images and weighed by ``--prior_loss_weight``. Here they come from

- a folder (``source: folder``): its images, each with its ``.txt`` caption when there is
  one, else the ``class_prompt``; sorted by name, the first ``images`` of them;
- the base model (``source: generate``): one image per class prompt, seed ``seed + i``,
  at the training resolution. A class prompt is ``class_prompt`` when set, else a training
  caption without its trigger words (its first ``1 + characters`` comma-separated tags:
  the style trigger, then one per character it names), i.e. the captions' class words.

``dataset.build_training_dataset`` writes them under ``reg/<repeats>_<class_name>/`` of the
training folder (kohya: ``--reg_data_dir <folder>/reg``; ``train_data_dir`` skips ``reg``,
which has no repeats prefix) and lists them in ``metadata.jsonl`` with ``is_reg: true``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from style_pipeline.contracts.training import RegularizationSettings
from style_pipeline.training.caption_augment import split_tags

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
REG_DIR = "reg"


@dataclass(frozen=True)
class RegImage:
    """One regularization image: a file stem, its encoded bytes and its caption."""

    stem: str
    data: bytes
    caption: str


def class_words(caption: str, triggers: int) -> str:
    """``caption`` without its first ``triggers`` tags (the trigger words)."""
    return ", ".join(split_tags(caption)[triggers:])


def class_prompts(
    captions: Sequence[tuple[str, int]], settings: RegularizationSettings
) -> list[str]:
    """``settings.images`` prompts: ``class_prompt`` each time, else the class words of
    ``(caption, characters named)`` pairs in turn (distinct ones, sorted; cycled)."""
    if settings.class_prompt:
        return [settings.class_prompt] * settings.images
    words = sorted({w for c, n in captions if (w := class_words(c, 1 + n))})
    if not words:
        raise ValueError(
            "regularization: the captions hold no class words after their trigger words; "
            "set training.dataset.regularization.class_prompt"
        )
    return [words[i % len(words)] for i in range(settings.images)]


def from_folder(folder: Path, settings: RegularizationSettings) -> list[RegImage]:
    """The first ``settings.images`` images of ``folder`` by name, with their ``.txt``
    captions (else ``class_prompt``); a file that is not an image is skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"regularization folder {folder} not found")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    images = []
    for path in files[: settings.images]:
        text = path.with_suffix(".txt")
        caption = " ".join(text.read_text().split()) if text.is_file() else ""
        caption = caption or (settings.class_prompt or "")
        if not caption:
            raise ValueError(
                f"regularization image {path.name} has no .txt caption and no class_prompt is set"
            )
        images.append(RegImage(path.stem, path.read_bytes(), caption))
    if not images:
        raise ValueError(f"regularization folder {folder} holds no images")
    return images


def generate(
    pipe, prompts: Sequence[str], settings: RegularizationSettings, resolution: int
) -> list[RegImage]:
    """One PNG per prompt from the base model ``pipe``, seed ``settings.seed + i``."""
    pipe.set_progress_bar_config(disable=True)
    images = []
    for index, prompt in enumerate(prompts):
        image = pipe(
            prompt,
            num_inference_steps=settings.num_inference_steps,
            guidance_scale=settings.guidance_scale,
            generator=torch.Generator("cpu").manual_seed(settings.seed + index),
            height=resolution,
            width=resolution,
        ).images[0]
        images.append(RegImage(f"reg_{index:05d}", _png(image), prompt))
    return images


def regularization_images(
    settings: RegularizationSettings,
    captions: Sequence[tuple[str, int]],
    resolution: int,
    load_pipe: Callable[[], object],
) -> list[RegImage]:
    """The images ``settings.source`` asks for (none for ``none``); ``load_pipe`` is called
    only to generate."""
    if settings.source == "none":
        return []
    if settings.source == "folder":
        if not settings.folder:
            raise ValueError("regularization.source is folder but regularization.folder is unset")
        return from_folder(Path(settings.folder), settings)
    prompts = class_prompts(captions, settings)
    log.info("regularization: generating %d images with the base model", len(prompts))
    return generate(load_pipe(), prompts, settings, resolution)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
