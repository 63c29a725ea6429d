"""Vision-language captioning models (Florence-2, Qwen2-VL class, BLIP-2) through ``profiles.py``.

:func:`load_vlm` obtains one for ``captioning.caption.vlm``. ``pretrained`` loads a hub
id or a local directory with ``local_files_only=True`` (never a download, never remote
code) through ``AutoModelForImageTextToText`` / ``AutoProcessor`` and reads the family
from the model's ``config.json``; when the weights are not here it raises
:class:`PretrainedUnavailable` naming ``style-pipeline models pull NAME``. ``tiny``
builds a random-init model of the family (:mod:`style_pipeline.models.vlm_tiny`) once
into the cache folder, keyed by a fingerprint, and loads it back the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from style_pipeline.contracts.captioning_vlm import VLM_CATALOG, VlmCaptionConfig, VlmFamily
from style_pipeline.models.cache import sha256_of
from style_pipeline.models.device import pick_device
from style_pipeline.models.loaded import ProfileFacts, pretrained_source, with_fallback_note
from style_pipeline.models.profiles import (
    PretrainedUnavailable,
    offline,
    pull_hint,
    resolve_profile,
)
from style_pipeline.models.registry import hub_snapshot, pull, vlm_entry
from style_pipeline.models.vlm_tiny import WEIGHTS_NAME, build_tiny_vlm, tiny_fingerprint

if TYPE_CHECKING:  # transformers is imported lazily (heavy)
    from transformers import PreTrainedModel, ProcessorMixin

log = logging.getLogger(__name__)

# config.json model_type -> how the model is prompted; any other model with a chat
# template is prompted like Qwen2-VL (a chat message holding the image and the instruction)
MODEL_TYPES: dict[str, VlmFamily] = {
    "florence2": "florence2",
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_vl",
    "blip-2": "blip2",
}


@dataclass
class LoadedVlm(ProfileFacts):
    """A VLM in eval mode with its processor, its family, and what was asked for vs. what ran."""

    model: PreTrainedModel
    processor: ProcessorMixin
    family: VlmFamily
    device: torch.device
    dtype: torch.dtype

    def metadata(self) -> dict[str, str]:
        """Flat facts for asset metadata (``fallback_reason`` is '' when none)."""
        dtype = str(self.dtype).removeprefix("torch.")
        return self.profile_metadata("caption", family=self.family, dtype=dtype)


def guess_family(model_id: str) -> VlmFamily:
    """The family a model id names (for tiny builds): blip2, qwen2_vl or florence2."""
    lowered = model_id.lower().replace("-", "").replace("_", "")
    if "blip2" in lowered:
        return "blip2"
    if "qwen" in lowered or model_id == VLM_CATALOG["qwen2-vl"]:
        return "qwen2_vl"
    return "florence2"


def family_of(model_type: str, has_chat_template: bool, explicit: str = "auto") -> VlmFamily:
    """The prompting family of a loaded model; ``explicit`` (not ``auto``) wins."""
    if explicit != "auto":
        return explicit  # type: ignore[return-value]  # a VlmFamily by the contract
    if model_type in MODEL_TYPES:
        return MODEL_TYPES[model_type]
    if has_chat_template:
        return "qwen2_vl"
    raise ValueError(
        f"cannot tell how to prompt a {model_type!r} model: set captioning.caption.vlm.family "
        "(florence2, qwen2_vl or blip2)"
    )


def pick_dtype(preference: str, device: torch.device) -> torch.dtype:
    """``auto``: bfloat16 on CUDA (halves memory, same speed or better), float32 elsewhere."""
    if preference == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, preference)


def load_vlm_dir(
    path: str | Path, device: torch.device, dtype: torch.dtype, cache_dir: str | None = None
) -> tuple[Any, Any, str]:
    """Model (eval, on ``device`` in ``dtype``), processor and model_type, from local files only."""
    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    with offline():
        config = AutoConfig.from_pretrained(str(path), local_files_only=True, cache_dir=cache_dir)
        processor = AutoProcessor.from_pretrained(
            str(path), local_files_only=True, cache_dir=cache_dir
        )
        model = AutoModelForImageTextToText.from_pretrained(
            str(path), local_files_only=True, cache_dir=cache_dir, dtype=dtype
        )
    # transformers wraps PreTrainedModel.to in a decorator whose stub drops ``self``.
    return model.to(device).eval(), processor, config.model_type  # type: ignore[arg-type]


def _loaded(config: VlmCaptionConfig, path, model_id, used, reason) -> LoadedVlm:
    device = pick_device(config.device)
    dtype = pick_dtype(config.dtype, device)
    model, processor, model_type = load_vlm_dir(path, device, dtype, config.hf_cache_dir)
    if not model.config.is_encoder_decoder:  # batched generation continues after the prompt
        processor.tokenizer.padding_side = "left"
    has_template = bool(getattr(processor, "chat_template", None))
    family = family_of(model_type, has_template, config.family)
    return LoadedVlm(
        model, processor, family, device, dtype, model_id=model_id, source=str(path),
        profile_requested=config.profile, profile_used=used, fallback_reason=reason,
    )  # fmt: skip


def load_vlm_tiny(config: VlmCaptionConfig, words: Iterable[str] | None = None) -> LoadedVlm:
    """Build-or-reuse the tiny VLM of the configured family and load it back from disk."""
    family = config.family if config.family != "auto" else guess_family(config.pretrained)
    words = sorted(set(words or ()))
    arch = config.tiny
    key = tiny_fingerprint(family, arch, words)
    out_dir = config.cache_path() / "tiny" / f"{arch.name}-{family}-{key}"
    path = build_tiny_vlm(out_dir, family, arch, words)
    digest = sha256_of(path / WEIGHTS_NAME)[:16]
    tiny = config.model_copy(update={"family": family})
    return _loaded(tiny, path, f"{arch.name}-{family}@sha256:{digest}", "tiny", None)


def _in_hub_cache(config: VlmCaptionConfig) -> bool:
    try:
        return hub_snapshot(config.pretrained, "config.json", config.hf_cache_dir) is not None
    except ValueError:  # not a repo id at all (a missing path): not cached
        return False


def load_vlm_pretrained(config: VlmCaptionConfig) -> LoadedVlm:
    """The pretrained VLM from local files only; raises :class:`PretrainedUnavailable`."""
    source, is_dir = pretrained_source(config.pretrained)
    missing = (
        f"VLM {config.pretrained!r} is neither a local model directory nor in the Hugging Face "
        "cache (offline lookup only)"
    )
    if not is_dir and not _in_hub_cache(config):
        # answered without importing the model classes (seconds): auto asks on every run
        raise PretrainedUnavailable(missing)
    try:
        return _loaded(config, source, config.pretrained, "pretrained", None)
    except (OSError, ValueError) as exc:
        if isinstance(exc, ValueError) and "cannot tell how to prompt" in str(exc):
            raise
        raise PretrainedUnavailable(f"{missing}: {str(exc).splitlines()[0][:300]}") from exc


def load_vlm(
    config: VlmCaptionConfig | None = None, words: Iterable[str] | None = None
) -> LoadedVlm:
    """The VLM captioner model for ``config.profile``; ``auto`` falls back to tiny, loudly."""
    config = config or VlmCaptionConfig()
    try:
        resolved = resolve_profile(
            "VLM",
            config.profile,
            pretrained=lambda: load_vlm_pretrained(config),
            tiny=lambda: load_vlm_tiny(config, words),
            download=lambda: pull(vlm_entry(config)),
            pull_name=config.pull_name(),
        )
    except PretrainedUnavailable as err:  # profile pretrained: say how to get the weights
        raise PretrainedUnavailable(f"{err}; {pull_hint(config.pull_name())}") from err
    return with_fallback_note(resolved, "VLM", config.pretrained)
