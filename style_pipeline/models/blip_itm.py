"""BLIP image-text matching (ITM): :func:`load_blip_itm` for a profile via ``profiles.py``.

``pretrained`` loads ``BlipForImageTextRetrieval`` from a hub id (default
``Salesforce/blip-itm-base-coco``) or a local directory, local files only. ``tiny`` builds
a random-init model (same shape and WordPiece vocabulary as the tiny BLIP captioner),
saves it and loads it back, the production path. ``auto`` follows the shared resolver.
:func:`itm_pretrained_or_none` is what ``use_itm: auto`` uses: the pretrained model when
its weights are on disk, else None and why (never tiny, never downloaded).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
from PIL import Image

from style_pipeline.contracts.models import BlipModelConfig, Profile, TinyBlipArch
from style_pipeline.models.blip import (
    WEIGHTS_NAME,
    build_tiny_blip,
    load_blip_dir,
    load_blip_pretrained_dir,
    tiny_fingerprint,
    tiny_vocabulary,
)
from style_pipeline.models.cache import sha256_of
from style_pipeline.models.device import pick_device
from style_pipeline.models.profiles import PretrainedUnavailable, resolve_profile

if TYPE_CHECKING:  # transformers is imported lazily (heavy)
    from transformers import BlipForImageTextRetrieval, BlipProcessor


@dataclass
class LoadedItm:
    """A BLIP ITM model in eval mode with its processor, and how it was obtained."""

    model: BlipForImageTextRetrieval
    processor: BlipProcessor
    device: torch.device
    model_id: str
    profile_requested: Profile
    profile_used: Literal["pretrained", "tiny"]
    fallback_reason: str | None = None

    def match_probabilities(
        self, images: Sequence[Image.Image], texts: Sequence[str], batch_size: int = 32
    ) -> list[float]:
        """P(text matches image) for each (image, text) pair, from the ITM head (0..1)."""
        if len(images) != len(texts):
            raise ValueError(f"{len(images)} images for {len(texts)} texts")
        out: list[float] = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                inputs = self.processor(
                    images=[im.convert("RGB") for im in images[start : start + batch_size]],
                    text=list(texts[start : start + batch_size]),
                    return_tensors="pt",
                    padding=True,
                    truncation=True,
                ).to(self.device)
                logits = self.model(**inputs, use_itm_head=True).itm_score
                out += logits.float().softmax(dim=-1)[:, 1].cpu().tolist()
        return out

    def metadata(self) -> dict[str, str]:
        return {
            "itm_model_id": self.model_id,
            "itm_profile_used": self.profile_used,
            "itm_fallback_reason": self.fallback_reason or "",
        }


def build_tiny_itm(out_dir: Path, arch: TinyBlipArch, vocab: list[str]) -> Path:
    """Build the random-init ITM model + processor from ``arch`` and ``vocab``; save it."""
    from transformers import BlipForImageTextRetrieval

    return build_tiny_blip(out_dir, arch, vocab, BlipForImageTextRetrieval, "BLIP ITM")


def _load_dir(
    path: str | Path, device: torch.device
) -> tuple[BlipForImageTextRetrieval, BlipProcessor]:
    from transformers import BlipForImageTextRetrieval

    return load_blip_dir(path, device, model_class=BlipForImageTextRetrieval)


def load_itm_tiny(config: BlipModelConfig, words: Iterable[str] | None = None) -> LoadedItm:
    """Build-or-reuse the tiny ITM model and load it back from disk."""
    vocab = tiny_vocabulary(words or ())
    arch = config.tiny
    name = f"{arch.name}-itm-{tiny_fingerprint(arch, vocab)}"
    path = build_tiny_itm(config.cache_path() / "tiny" / name, arch, vocab)
    device = pick_device(config.device)
    model, processor = _load_dir(path, device)
    digest = sha256_of(path / WEIGHTS_NAME)[:16]
    return LoadedItm(
        model, processor, device, f"{arch.name}-itm@sha256:{digest}", config.profile, "tiny"
    )


def load_itm_pretrained(config: BlipModelConfig) -> LoadedItm:
    """Pretrained ITM from local files only; raises :class:`PretrainedUnavailable`."""
    from transformers import BlipForImageTextRetrieval

    device = pick_device(config.device)
    model, processor, _ = load_blip_pretrained_dir(
        config, device, BlipForImageTextRetrieval, "BLIP ITM"
    )
    return LoadedItm(model, processor, device, config.pretrained, config.profile, "pretrained")


def load_blip_itm(config: BlipModelConfig, words: Iterable[str] | None = None) -> LoadedItm:
    """The ITM model for ``config.profile``; ``auto`` falls back to tiny, loudly."""
    resolved = resolve_profile(
        "BLIP ITM",
        config.profile,
        pretrained=lambda: load_itm_pretrained(config),
        tiny=lambda: load_itm_tiny(config, words),
        pull_name="blip",
    )
    return replace(resolved.value, fallback_reason=resolved.fallback_reason)


def itm_pretrained_or_none(config: BlipModelConfig) -> tuple[LoadedItm | None, str]:
    """The pretrained ITM model when its weights are on disk, else None; and why."""
    try:
        return load_itm_pretrained(config), f"pretrained {config.pretrained}"
    except PretrainedUnavailable as err:
        return None, str(err).splitlines()[0][:300]
