"""Captioners behind one interface: local BLIP and a template fallback.

Every captioner has a ``name`` and ``caption(images, prompts, labels) -> list[CaptionResult]``
returning raw text; post-processing (trigger word, cleanup, tags, truncation) and
vocabulary validation happen afterwards, the same way for every backend. The
OpenAI-compatible endpoint captioner lives in :mod:`style_pipeline.captioning.remote`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
from PIL import Image

from style_pipeline.captioning.templates import template_caption
from style_pipeline.models.blip import LoadedBlip

Labels = Mapping[str, Sequence[str | tuple[str, float]]]  # category -> zero-shot terms, best first


@dataclass(frozen=True)
class CaptionResult:
    """One raw caption and where it came from."""

    caption: str
    source: str
    model: str
    prompt: str
    cached: bool = False


@runtime_checkable
class Captioner(Protocol):
    """Turns images into raw captions; ``prompts`` is one string or one per image."""

    name: str

    def caption(
        self,
        images: Sequence[Image.Image],
        prompts: str | Sequence[str] | None = None,
        labels: Sequence[Labels] | None = None,
    ) -> list[CaptionResult]: ...


def per_image(prompts: str | Sequence[str] | None, count: int, default: str) -> list[str]:
    """``prompts`` expanded to one per image (``None`` -> ``default``); checks the length."""
    if prompts is None:
        return [default] * count
    if isinstance(prompts, str):
        return [prompts] * count
    prompts = list(prompts)
    if len(prompts) != count:
        raise ValueError(f"got {len(prompts)} prompts for {count} images")
    return prompts


class BlipCaptioner:
    """Batched conditional BLIP captioning, optionally with a PEFT LoRA adapter merged in.

    The prompt (e.g. ``a photo in the style of <trigger>, ``) conditions the decoder; the
    returned caption is the continuation only. Loading an adapter merges it into
    ``loaded.model`` in place.
    """

    name = "blip"

    def __init__(
        self,
        loaded: LoadedBlip,
        *,
        adapter_dir: str | Path | None = None,
        batch_size: int = 8,
        max_new_tokens: int = 40,
        num_beams: int = 3,
        default_prompt: str = "",
    ):
        if batch_size < 1 or max_new_tokens < 1 or num_beams < 1:
            raise ValueError("batch_size, max_new_tokens and num_beams must be >= 1")
        self.processor = loaded.processor
        self.device = loaded.device
        self.model_id = loaded.model_id
        model = loaded.model
        if adapter_dir is not None:
            from peft import PeftModel

            adapter = Path(adapter_dir)
            if not (adapter / "adapter_config.json").is_file():
                raise FileNotFoundError(f"{adapter} has no adapter_config.json (not a PEFT dir)")
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
            self.model_id = f"{loaded.model_id}+lora:{adapter.name}"
        self.model = model.eval()
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.default_prompt = default_prompt

    def caption(
        self,
        images: Sequence[Image.Image],
        prompts: str | Sequence[str] | None = None,
        labels: Sequence[Labels] | None = None,
    ) -> list[CaptionResult]:
        """Captions in input order; images sharing a prompt are generated in batches."""
        prompts = per_image(prompts, len(images), self.default_prompt)
        texts: list[str] = [""] * len(images)
        groups: dict[str, list[int]] = {}
        for index, prompt in enumerate(prompts):
            groups.setdefault(prompt, []).append(index)
        for prompt, indices in groups.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start : start + self.batch_size]
                batch = [images[i].convert("RGB") for i in chunk]
                for i, text in zip(chunk, self._generate(batch, prompt), strict=True):
                    texts[i] = text
        return [
            CaptionResult(text, self.name, self.model_id, prompt)
            for text, prompt in zip(texts, prompts, strict=True)
        ]

    def _generate(self, images: list[Image.Image], prompt: str) -> list[str]:
        kwargs = {"images": images, "return_tensors": "pt"}
        if prompt:
            kwargs["text"] = [prompt] * len(images)
        inputs = self.processor(**kwargs).to(self.device)
        # BLIP's generate drops the final [SEP] of the prompt and restarts from [DEC].
        prompt_len = inputs["input_ids"].shape[1] - 1 if prompt else 1
        with torch.inference_mode():
            output = self.model.generate(
                **inputs, max_new_tokens=self.max_new_tokens, num_beams=self.num_beams
            )
        return self.processor.batch_decode(output[:, prompt_len:], skip_special_tokens=True)


class TemplateCaptioner:
    """Captions assembled from per-image zero-shot ontology labels (no model)."""

    name = "template"

    def __init__(self, category_order: Sequence[str] | None = None, per_category: int = 2):
        self.category_order = list(category_order) if category_order else None
        self.per_category = per_category
        self.model_id = "ontology-template"

    def caption(
        self,
        images: Sequence[Image.Image],
        prompts: str | Sequence[str] | None = None,
        labels: Sequence[Labels] | None = None,
    ) -> list[CaptionResult]:
        if labels is None or len(labels) != len(images):
            got = "none" if labels is None else len(labels)
            raise ValueError(
                f"template captioner needs labels for each of {len(images)} images, got {got}"
            )
        prompts = per_image(prompts, len(images), "")
        return [
            CaptionResult(
                template_caption(lab, self.category_order, self.per_category),
                self.name,
                self.model_id,
                prompt,
            )
            for lab, prompt in zip(labels, prompts, strict=True)
        ]
