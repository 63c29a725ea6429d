"""The CLIP model: :func:`load_model` obtains it for a profile through ``profiles.py``.

Profiles: ``pretrained`` (open_clip tag resolved from local caches, or a local
directory / checkpoint file), ``tiny`` (random-init model built from
:class:`ClipArch`, saved to the cache and re-loaded through the ``local-dir:`` path)
and ``auto`` (pretrained when loadable offline, else tiny, saying why loudly). The
open_clip file handling lives in ``clip_files.py``.

Precision: ``fp16``/``bf16`` load the weights in that dtype (open_clip keeps LayerNorms in
float32); callers cast inputs to :attr:`LoadedModel.input_dtype`. Each half precision is
tried by a forward pass on a dummy image and text at load time; if the device cannot run
it (an op not implemented for the dtype, or non-finite outputs) the model is loaded again
in the next one (fp16 -> bf16 -> fp32) and ``precision_note`` says why, also in metadata.
With torch 2.x both fp16 and bf16 run on CPU; the fallback is for older builds and devices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import torch

from style_pipeline.contracts.models import ClipArch, ModelConfig, Precision, Profile
from style_pipeline.models.cache import sha256_of
from style_pipeline.models.clip_files import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointLoadError,
    checkpoint_in_dir,
    create_from_checkpoint,
    create_from_local_dir,
    find_cached_checkpoint,
    local_dir_has_model,
    register_arch,
    save_random_clip,
)
from style_pipeline.models.device import pick_device, precision_candidates, weight_dtype
from style_pipeline.models.profiles import PretrainedUnavailable, resolve_profile
from style_pipeline.models.registry import clip_entry, pull
from style_pipeline.paths import resolve_local

log = logging.getLogger(__name__)
Created = tuple[torch.nn.Module, Callable, Callable]


@dataclass
class LoadedModel:
    """A ready CLIP model in eval mode, with what was asked for and what actually ran."""

    model: torch.nn.Module
    preprocess: Callable
    tokenizer: Callable
    device: torch.device
    model_name: str
    pretrained: str
    model_id: str
    dim: int
    image_size: int
    profile_requested: Profile
    profile_used: Literal["pretrained", "tiny"]
    fallback_reason: str | None
    source: str
    precision_requested: Precision = "fp32"
    precision: Precision = "fp32"  # what the weights are in (after any fallback)
    precision_note: str | None = None  # why precision != precision_requested

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype image batches must be cast to (the image tower's first layer)."""
        return weight_dtype(getattr(self.model, "visual", self.model))

    def metadata(self) -> dict[str, str | int]:
        """Flat facts for asset metadata (``fallback_reason`` is '' when none)."""
        return {
            "model_name": self.model_name,
            "pretrained": self.pretrained,
            "model_id": self.model_id,
            "dim": self.dim,
            "image_size": self.image_size,
            "device": str(self.device),
            "profile_requested": self.profile_requested,
            "profile_used": self.profile_used,
            "fallback_reason": self.fallback_reason or "",
            "source": self.source,
            "precision_requested": self.precision_requested,
            "precision": self.precision,
            "precision_note": self.precision_note or "",
        }


def tiny_dir(config: ModelConfig, arch: ClipArch | None = None) -> Path:
    """Where the tiny model of ``arch`` (default ``config.tiny``) lives in the cache."""
    arch = arch or config.tiny
    return config.cache_path() / "tiny" / f"{arch.name}-{arch.fingerprint()}"


def build_tiny(config: ModelConfig, arch: ClipArch | None = None) -> Path:
    """Build (once) and save the random-init model; returns its local directory."""
    return save_random_clip(arch or config.tiny, tiny_dir(config, arch))


def _image_size(model: torch.nn.Module) -> int:
    size: Any = getattr(model.visual, "image_size")  # noqa: B009 (nn.Module types it loosely)
    return int(size[0] if isinstance(size, tuple | list) else size)


def probe_precision(
    model: torch.nn.Module, tokenizer: Callable, device: torch.device
) -> str | None:
    """Why ``model`` cannot run in its dtype on ``device`` (None: it can).

    One forward of a mid-grey image and a short text, inputs cast like the real ones.
    """
    visual = cast(torch.nn.Module, model.visual)
    size = _image_size(model)
    image = torch.full((1, 3, size, size), 0.5, device=device, dtype=weight_dtype(visual))
    try:
        with torch.inference_mode():
            outs = (
                model.encode_image(image),  # type: ignore[operator]
                model.encode_text(tokenizer(["a photo"]).to(device)),  # type: ignore[operator]
            )
    except (RuntimeError, NotImplementedError, TypeError) as err:
        return f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    if not all(bool(torch.isfinite(o.float()).all()) for o in outs):
        return "non-finite embeddings"
    return None


def create_checked(
    create: Callable[[str], Created], precision: Precision, device: torch.device
) -> tuple[Created, Precision, str | None]:
    """``create(p)`` for the first precision, from ``precision`` down, the device can run.

    fp32 is not probed (it always runs); a fallback is logged and explained in the note.
    """
    problems: list[str] = []
    for candidate in precision_candidates(precision):
        created = create(candidate)
        if candidate == "fp32":
            break
        problem = probe_precision(created[0], created[2], device)
        if problem is None:
            break
        problems.append(f"{candidate} does not run on {device} ({problem})")
    note = None
    if problems:
        note = "; ".join(problems) + f": running in {candidate}"
        log.warning("CLIP precision fell back: %s", note)
    return created, candidate, note


def _finish(model, preprocess, tokenizer, device, **facts) -> LoadedModel:
    model.eval()
    visual = model.visual
    dim = getattr(visual, "output_dim", None)
    if not isinstance(dim, int):
        raise RuntimeError(f"cannot read the embedding dim of {type(visual).__name__}")
    return LoadedModel(
        model=model,
        preprocess=preprocess,
        tokenizer=tokenizer,
        device=device,
        dim=dim,
        image_size=_image_size(model),
        **facts,
    )


def load_tiny(
    config: ModelConfig, arch: ClipArch | None = None, *, fallback_reason: str | None = None
) -> LoadedModel:
    """Build-or-reuse the tiny model and load it back from disk like any local model."""
    arch = arch or config.tiny
    device = pick_device(config.device)
    path = build_tiny(config, arch)
    register_arch(path)
    (model, preprocess, tokenizer), precision, note = create_checked(
        lambda p: create_from_local_dir(path, device, p), config.precision, device
    )
    digest = sha256_of(path / WEIGHTS_NAME)
    return _finish(
        model,
        preprocess,
        tokenizer,
        device,
        precision_requested=config.precision,
        precision=precision,
        precision_note=note,
        model_name=path.name,
        pretrained=f"random-init(seed={arch.seed})",
        model_id=f"{path.name}@sha256:{digest[:16]}",
        profile_requested=config.profile,
        profile_used="tiny",
        fallback_reason=fallback_reason,
        source=str(path),
    )


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or value.endswith((".safetensors", ".bin", ".pt", ".pth"))


def load_pretrained(config: ModelConfig) -> LoadedModel:
    """Load pretrained weights from local files only; raises :class:`PretrainedUnavailable`."""
    device = pick_device(config.device)
    facts: dict = dict(
        profile_requested=config.profile, profile_used="pretrained", fallback_reason=None
    )

    def checked(create: Callable[[str], Created]) -> Created:
        created, facts["precision"], facts["precision_note"] = create_checked(
            create, config.precision, device
        )
        return created

    facts["precision_requested"] = config.precision
    if _looks_like_path(config.pretrained):
        path = resolve_local(config.pretrained)
        if path.is_dir() and local_dir_has_model(path):
            model, preprocess, tokenizer = checked(lambda p: create_from_local_dir(path, device, p))
            found = checkpoint_in_dir(path)
            if found is None:  # local_dir_has_model found one a moment ago
                raise PretrainedUnavailable(f"{path}: its checkpoint file disappeared")
            weights = found
            name = path.name
        elif path.is_dir() or path.is_file():
            weights = path if path.is_file() else _single_checkpoint(path)
            model, preprocess, tokenizer = checked(
                lambda p: create_from_checkpoint(config.model_name, weights, device, p)
            )
            name = config.model_name
        else:
            raise PretrainedUnavailable(f"local pretrained path not found: {path}")
        model_id = f"{name}@sha256:{sha256_of(weights)[:16]}"
        return _finish(
            model,
            preprocess,
            tokenizer,
            device,
            model_name=name,
            pretrained=str(path),
            model_id=model_id,
            source=str(weights),
            **facts,
        )
    checkpoint, _ = find_cached_checkpoint(
        config.model_name, config.pretrained, config.cache_path(), config.hf_cache_dir
    )
    model, preprocess, tokenizer = checked(
        lambda p: create_from_checkpoint(
            config.model_name, checkpoint, device, p, tag=config.pretrained
        )
    )
    return _finish(
        model,
        preprocess,
        tokenizer,
        device,
        model_name=config.model_name,
        pretrained=config.pretrained,
        model_id=f"{config.model_name}@{config.pretrained}",
        source=str(checkpoint),
        **facts,
    )


def _single_checkpoint(path: Path) -> Path:
    found = sorted(p for p in path.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    if len(found) != 1:
        raise PretrainedUnavailable(
            f"{path}: expected {CONFIG_NAME} or exactly one checkpoint file, found {found}"
        )
    return found[0]


def load_model(config: ModelConfig | None = None) -> LoadedModel:
    """The CLIP model for ``config.profile``; ``auto`` falls back to tiny with a reason.

    A corrupt or mismatched checkpoint (:class:`CheckpointLoadError`) counts as
    unavailable too, so ``auto`` falls back on it while ``pretrained`` raises it.
    """
    config = config or ModelConfig()
    resolved = resolve_profile(
        "CLIP",
        config.profile,
        pretrained=lambda: load_pretrained(config),
        tiny=lambda: load_tiny(config),
        fallback_on=(PretrainedUnavailable, CheckpointLoadError),
        download=lambda: pull(clip_entry(config)),
        pull_name="clip",
    )
    return replace(resolved.value, fallback_reason=resolved.fallback_reason)
