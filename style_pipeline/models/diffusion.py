"""Diffusion pipelines: ``pretrained`` (hub id / local dir), ``tiny`` (random) or ``auto``.

Every profile ends in the same place: a Stable Diffusion (SD 1.x, SDXL) or FLUX.1 pipeline
folder on local disk that ``DiffusionPipeline.from_pretrained(path, local_files_only=True)``
loads. ``tiny`` builds small random-init models with a fixed seed (sizes follow diffusers'
own LoRA and pipeline test fixtures), saves them with ``save_pretrained`` and hands back
the folder, so tests exercise the same loading path as production. Nothing here downloads
anything. Which profile is used, and the fallback, is decided by the shared resolver in
``profiles.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast

import torch

from style_pipeline.contracts.models import DEFAULT_PRETRAINED, DiffusionProfile, ModelFamily
from style_pipeline.models.cache import building_dir
from style_pipeline.models.diffusion_configs import CONFIGS, ComponentSize, build_pipeline
from style_pipeline.models.flux_configs import TINY_FLUX_CONFIGS, build_flux_pipeline
from style_pipeline.models.profiles import resolve_profile
from style_pipeline.models.registry import diffusion_entry, hub_snapshot, pull
from style_pipeline.paths import DEFAULT_MODEL_DIR, resolve_local

log = logging.getLogger(__name__)

TINY_SIZES: dict[str, str] = {"sd": "tiny", "sdxl": "tiny-sdxl", "flux": "tiny-flux"}


@dataclass(frozen=True)
class ResolvedDiffusion:
    """Where a pipeline folder lives, which profile produced it, and why."""

    path: str
    profile: Literal["pretrained", "tiny"]
    requested: DiffusionProfile
    reason: str

    def as_metadata(self) -> dict[str, str]:
        return {
            "model_path": self.path,
            "model_profile": self.profile,
            "model_profile_requested": self.requested,
            "model_profile_reason": self.reason,
        }


def default_cache_dir() -> Path:
    """Where tiny pipelines are saved: ``STYLE_PIPELINE_MODEL_CACHE``, else the shared model
    cache (``paths.DEFAULT_MODEL_DIR`` under the project root) + ``/diffusion``."""
    env = os.environ.get("STYLE_PIPELINE_MODEL_CACHE")
    return Path(env) if env else resolve_local(DEFAULT_MODEL_DIR) / "diffusion"


def tiny_fingerprint(seed: int, family: ModelFamily = "sd") -> str:
    """Content key of a tiny pipeline: configs, seed and the library versions that build it."""
    import diffusers
    import transformers

    size = TINY_SIZES[family]
    payload = {
        "configs": TINY_FLUX_CONFIGS if family == "flux" else CONFIGS[size],
        "seed": seed,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
    }
    blob = json.dumps(payload, sort_keys=True, default=list).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def save_tiny_pipeline(
    cache_dir: Path | None = None, seed: int = 0, family: ModelFamily = "sd"
) -> Path:
    """Build the tiny SD (SDXL, FLUX.1) pipeline and save it once; return its folder.

    The folder name carries :func:`tiny_fingerprint`, so a cached folder is reused only when
    it was built from the same configs, seed and library versions. Written to a temp folder
    and renamed into place, so concurrent builders never see a partial pipeline.
    """
    cache_dir = Path(cache_dir or default_cache_dir())
    size = TINY_SIZES[family]
    target = cache_dir / f"{size}-{tiny_fingerprint(seed, family)}"
    if (target / "model_index.json").is_file():
        return target
    with building_dir(target, "model_index.json") as tmp:
        if family == "flux":
            pipe = build_flux_pipeline(seed)
        else:
            pipe = build_pipeline(cast("ComponentSize", size), seed)
        pipe.save_pretrained(tmp, safe_serialization=True)
    log.info("saved tiny %s pipeline to %s", family, target)
    return target


def find_pretrained(name_or_path: str) -> str:
    """The local folder of a pretrained pipeline: a directory, or a hub id already cached.

    Raises ``FileNotFoundError`` naming what was tried; never downloads.
    """
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "model_index.json").is_file():
            raise FileNotFoundError(f"{local} has no model_index.json: not a diffusers pipeline")
        return str(local)
    # the snapshot refs/main points at, holding model_index.json (a pull fetches only the
    # files a load needs, so the hub's full listing is not required to be complete)
    try:
        found = hub_snapshot(name_or_path, "model_index.json", None)
    except ValueError as exc:  # not a valid repo id either
        raise FileNotFoundError(
            f"{name_or_path!r} is neither a folder nor a hub id: {exc}"
        ) from exc
    if found is None:
        raise FileNotFoundError(
            f"pretrained pipeline {name_or_path!r} is neither a local folder nor in the "
            "Hugging Face cache (offline lookup only)"
        )
    return str(found)


def resolve_diffusion(
    profile: DiffusionProfile = "auto",
    pretrained: str = DEFAULT_PRETRAINED,
    cache_dir: Path | None = None,
    seed: int = 0,
    family: ModelFamily = "sd",
) -> ResolvedDiffusion:
    """Pick the pipeline folder for ``profile``; ``auto`` falls back to tiny with a loud reason.

    ``family`` chooses which tiny pipeline stands in (SD 1.x-, SDXL- or FLUX.1-style); a
    pretrained name that is not on disk (``FileNotFoundError``) counts as unavailable.
    """
    resolved = resolve_profile(
        "diffusion",
        profile,
        pretrained=lambda: find_pretrained(pretrained),
        tiny=lambda: str(save_tiny_pipeline(cache_dir, seed, family)),
        fallback_on=(FileNotFoundError,),
        download=lambda: pull(diffusion_entry(pretrained, family)),
        pull_name="diffusion",
    )
    if resolved.fallback_reason is not None:
        reason = f"FALLBACK TO TINY RANDOM-INIT MODELS: {resolved.fallback_reason}"
    elif profile == "auto":
        reason = f"{pretrained} found locally"
    else:
        reason = "tiny profile requested" if profile == "tiny" else "requested"
    return ResolvedDiffusion(resolved.value, resolved.used, profile, reason)


def load_pipeline(path: str | Path, torch_dtype: torch.dtype = torch.float32):
    """Load a pipeline folder offline (``local_files_only=True``), SD, SDXL or FLUX alike."""
    from diffusers import DiffusionPipeline

    index = json.loads((Path(path) / "model_index.json").read_text())
    extra = {"safety_checker": None} if "safety_checker" in index else {}
    return DiffusionPipeline.from_pretrained(
        str(path), dtype=torch_dtype, local_files_only=True, **extra
    )
