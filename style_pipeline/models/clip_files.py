"""open_clip files on disk: find cached pretrained weights offline, save tiny models, load both.

Nothing here downloads. A pretrained tag is resolved to a file already on disk (the
model cache, the Hugging Face cache or open_clip's URL cache) before open_clip sees it;
a tiny model is built from a seed, saved as ``open_clip_config.json`` +
``open_clip_model.safetensors`` and loaded back through the ``local-dir:`` path that
also serves pretrained local directories.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import open_clip
import torch
from open_clip.pretrained import get_pretrained_cfg
from safetensors.torch import save_file

from style_pipeline.contracts.models import ClipArch
from style_pipeline.models.cache import building_dir
from style_pipeline.models.profiles import PretrainedUnavailable, offline

CONFIG_NAME = "open_clip_config.json"
WEIGHTS_NAME = "open_clip_model.safetensors"
_CHECKPOINT_NAMES = (
    WEIGHTS_NAME,
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "model.safetensors",
)


class CheckpointLoadError(RuntimeError):
    """Weights are on disk but open_clip cannot load them (corrupt or mismatched file)."""


def _hf_cached(repo_id: str, filename: str | None, hf_cache_dir: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    """A file of ``repo_id`` already in the Hugging Face cache (safetensors preferred)."""
    if not filename:
        names = ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    elif filename.endswith((".bin", ".pth")):
        names = [filename[:-4] + ".safetensors", filename]
    else:
        names = [filename]
    for name in names:
        found = try_to_load_from_cache(repo_id, name, cache_dir=hf_cache_dir)
        if isinstance(found, str) and os.path.isfile(found):
            return Path(found)
    return None


def find_cached_checkpoint(
    model_name: str, tag: str, cache_dir: Path, hf_cache_dir: str | None
) -> tuple[Path, list[str]]:
    """The local file holding ``model_name``/``tag`` weights, and the places searched.

    Order: ``<cache_dir>/<model_name>/<tag>/`` then the Hugging Face cache, then
    open_clip's URL cache (``~/.cache/clip``). Raises :class:`PretrainedUnavailable`.
    """
    cfg = get_pretrained_cfg(model_name, tag)
    if not cfg:
        known = open_clip.list_pretrained_tags_by_model(model_name)
        raise PretrainedUnavailable(f"unknown pretrained tag {tag!r} for {model_name} ({known})")
    searched = []
    own = cache_dir / model_name / tag
    searched.append(str(own))
    for name in _CHECKPOINT_NAMES:
        if (own / name).is_file():
            return own / name, searched
    if cfg.get("hf_hub"):
        repo_id, filename = os.path.split(cfg["hf_hub"])
        searched.append(f"hf-cache:{repo_id}/{filename or '<default>'}")
        found = _hf_cached(repo_id, filename or None, hf_cache_dir)
        if found:
            return found, searched
    if cfg.get("url"):
        target = Path("~/.cache/clip").expanduser() / os.path.basename(cfg["url"])
        searched.append(str(target))
        if target.is_file():
            return target, searched
    raise PretrainedUnavailable(
        f"pretrained weights {model_name}/{tag} are not cached locally (searched: "
        f"{', '.join(searched)}); downloads are disabled"
    )


def save_random_clip(arch: ClipArch, out_dir: Path) -> Path:
    """Build ``arch`` with its seed and save it as an open_clip local directory (atomic)."""
    if (out_dir / CONFIG_NAME).is_file() and (out_dir / WEIGHTS_NAME).is_file():
        return out_dir
    model_cfg = arch.open_clip_cfg()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(arch.seed)
        model = open_clip.model.CLIP(**model_cfg)
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {"size": arch.image_size},
        "style_pipeline": {"arch": arch.model_dump(), "weights": "random-init"},
    }
    with building_dir(out_dir, WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"seed": str(arch.seed)})
        (tmp / CONFIG_NAME).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        arch_json = json.dumps(model_cfg, indent=2, sort_keys=True) + "\n"
        (tmp / f"{out_dir.name}.json").write_text(arch_json)
    return out_dir


def register_arch(model_dir: Path) -> str:
    """Make a saved local model's architecture known to open_clip by its directory name.

    Writes ``<model_dir>/<name>.json`` (the bare ``model_cfg``) and registers it with
    ``open_clip.add_model_config``, so ``create_model(name, pretrained=<file>)`` works.
    """
    name = model_dir.name
    if name not in open_clip.list_models():
        config = json.loads((model_dir / CONFIG_NAME).read_text())["model_cfg"]
        arch_file = model_dir / f"{name}.json"
        if not arch_file.is_file():
            arch_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        open_clip.add_model_config(arch_file)
    return name


def checkpoint_in_dir(path: Path) -> Path | None:
    """The weights file open_clip's ``local-dir:`` loader prefers in ``path`` (None: none)."""
    return next((path / n for n in _CHECKPOINT_NAMES if (path / n).is_file()), None)


def local_dir_has_model(path: Path) -> bool:
    return (path / CONFIG_NAME).is_file() and checkpoint_in_dir(path) is not None


def create_from_local_dir(path: Path, device: torch.device, precision: str):
    """Model, eval transform and tokenizer from an open_clip local directory."""
    if not local_dir_has_model(path):
        raise FileNotFoundError(f"{path} has no {CONFIG_NAME} with weights next to it")
    name = f"local-dir:{path}"
    with offline(), _load_errors(path):
        model, _, preprocess = open_clip.create_model_and_transforms(
            name, device=device, precision=precision
        )
        tokenizer = open_clip.get_tokenizer(name)
    return model, preprocess, tokenizer


@contextlib.contextmanager
def _load_errors(source: Path) -> Iterator[None]:
    """Re-raise whatever a failed weights load throws as :class:`CheckpointLoadError`."""
    try:
        yield
    except Exception as err:  # safetensors, unpickling and shape errors share no base class
        raise CheckpointLoadError(f"cannot load {source}: {type(err).__name__}: {err}") from err


def create_from_checkpoint(
    model_name: str, checkpoint: Path, device: torch.device, precision: str, tag: str | None = None
):
    """Model, eval transform and tokenizer for a built-in architecture and a weights file.

    ``tag`` (when the file holds a known pretrained tag) supplies that tag's preprocessing
    (mean, std, interpolation, resize mode) and QuickGELU flag, as open_clip would.
    """
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    if model_name not in open_clip.list_models():
        arch_file = checkpoint.parent / f"{model_name}.json"
        if not arch_file.is_file():
            raise PretrainedUnavailable(
                f"unknown open_clip architecture {model_name!r} (no {arch_file.name} next to "
                f"{checkpoint.name}, not built in)"
            )
        open_clip.add_model_config(arch_file)
    cfg = get_pretrained_cfg(model_name, tag) if tag else {}
    with offline(), _load_errors(checkpoint):
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name,
            pretrained=str(checkpoint),
            device=device,
            precision=precision,
            force_quick_gelu=bool(cfg.get("quick_gelu", False)),
            image_mean=cfg.get("mean"),
            image_std=cfg.get("std"),
            image_interpolation=cfg.get("interpolation"),
            image_resize_mode=cfg.get("resize_mode"),
        )
        tokenizer = open_clip.get_tokenizer(model_name)
    return model, preprocess, tokenizer
