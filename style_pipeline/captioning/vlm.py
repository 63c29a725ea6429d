"""Batched captions from a local VLM: Florence-2 task tokens, chat VLMs, BLIP-2 prefixes.

Every family runs through transformers' ``image-text-to-text`` pipeline with
``return_full_text=False`` (the continuation only), ``batch_size`` images per forward:

* ``qwen2_vl`` (Qwen2-VL and any chat-template VLM): one chat conversation per image (a
  user turn holding the image, then the instruction), placed by the model's template;
* ``florence2``: the image and its task token (``<MORE_DETAILED_CAPTION>`` ...), which
  the processor expands to Florence-2's task sentence; the decoder output is the caption;
* ``blip2``: the image and the text the caption continues (may be empty); the pipeline
  removes that prefix from the decoded output.

Images are first downscaled to ``max_image_edge`` (processors resize anyway; Qwen2-VL
would otherwise spend thousands of tokens on a large frame). Prompts are per image
(``per_image``) and may differ inside a batch: the pipeline pads (on the left for the
decoder-only families, set by the loader).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from style_pipeline.captioning.captioners import CaptionResult, Labels, per_image
from style_pipeline.contracts.captioning_vlm import FLORENCE2_TASKS
from style_pipeline.models.vlm import LoadedVlm

log = logging.getLogger(__name__)


def chat_messages(image: Image.Image, prompt: str) -> list[dict[str, Any]]:
    """One user turn holding the image and the instruction (the chat template places them)."""
    return [{
        "role": "user",
        "content": [{"type": "image", "image": image}, {"type": "text", "text": prompt}],
    }]  # fmt: skip


def downscaled(image: Image.Image, max_edge: int | None) -> Image.Image:
    """``image`` with its longer edge at most ``max_edge`` (aspect kept); None: unchanged."""
    if max_edge is None or max(image.size) <= max_edge:
        return image
    scale = max_edge / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BICUBIC)


def florence_task(prompt: str) -> str:
    """The Florence-2 task token a prompt starts with; the rest is dropped (Florence-2
    takes no free text with a caption task: a re-caption's added note would break it)."""
    task = next((t for t in FLORENCE2_TASKS if prompt.strip().startswith(t)), None)
    if task is None:
        raise ValueError(f"Florence-2 prompts must start with a task token {FLORENCE2_TASKS}, "
                         f"got {prompt[:80]!r}")  # fmt: skip
    if prompt.strip() != task:
        log.info("Florence-2 takes only the task token: %r dropped", prompt.strip()[len(task) :])
    return task


class VlmCaptioner:
    """Captioner over a :class:`LoadedVlm`; ``default_prompt`` is used when none is given.

    For Florence-2 a prompt must start with one of its caption task tokens (``<CAPTION>``,
    ``<DETAILED_CAPTION>``, ``<MORE_DETAILED_CAPTION>``); for chat VLMs it is the
    instruction; for BLIP-2 the text the caption continues ('' for a plain caption).
    """

    name = "vlm"

    def __init__(
        self,
        loaded: LoadedVlm,
        *,
        default_prompt: str = "",
        batch_size: int = 4,
        max_new_tokens: int = 60,
        num_beams: int = 3,
        max_image_edge: int | None = 768,
    ):
        if batch_size < 1 or max_new_tokens < 1 or num_beams < 1:
            raise ValueError("batch_size, max_new_tokens and num_beams must be >= 1")
        if loaded.family == "florence2" and not default_prompt:
            default_prompt = "<MORE_DETAILED_CAPTION>"
        self.loaded = loaded
        self.family = loaded.family
        self.model_id = loaded.model_id
        self.default_prompt = default_prompt
        self.batch_size = batch_size
        self.max_image_edge = max_image_edge
        self.generate_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens, "num_beams": num_beams, "do_sample": False,
        }  # fmt: skip
        # BLIP-2's generate hands these to its language model, whose generation config is
        # its own: pass the tokens the saved one suppresses (the tiny models' unprintables)
        if suppress := getattr(loaded.model.generation_config, "suppress_tokens", None):
            self.generate_kwargs["suppress_tokens"] = list(suppress)
        self._pipeline: Any = None

    def caption(
        self,
        images: Sequence[Image.Image],
        prompts: str | Sequence[str] | None = None,
        labels: Sequence[Labels] | None = None,
    ) -> list[CaptionResult]:
        """One caption per image, in input order, generated ``batch_size`` images at a time."""
        prompts = per_image(prompts, len(images), self.default_prompt)
        asked = prompts
        if self.family == "florence2":
            prompts = [florence_task(p) for p in prompts]
        texts: list[str] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            batch = [downscaled(image.convert("RGB"), self.max_image_edge) for image in chunk]
            texts += self._batch(batch, prompts[start : start + self.batch_size])
        return [
            CaptionResult(" ".join(text.split()), self.name, self.model_id, prompt)
            for text, prompt in zip(texts, asked, strict=True)
        ]

    def _batch(self, images: list[Image.Image], prompts: list[str]) -> list[str]:
        if self._pipeline is None:
            from transformers import pipeline

            self._pipeline = pipeline(
                "image-text-to-text", model=self.loaded.model, processor=self.loaded.processor
            )
        inputs: dict[str, Any]
        if self.family == "qwen2_vl":
            inputs = {"text": [chat_messages(i, p) for i, p in zip(images, prompts, strict=True)]}
        else:
            inputs = {"images": images, "text": prompts}
        with torch.inference_mode():
            outputs = self._pipeline(
                **inputs, batch_size=len(images), return_full_text=False,
                generate_kwargs=self.generate_kwargs,
            )  # fmt: skip
        # per input, a list of candidates (one here: no sampling, one returned sequence)
        return [out[0]["generated_text"] if isinstance(out, list) else out["generated_text"]
                for out in outputs]  # fmt: skip
