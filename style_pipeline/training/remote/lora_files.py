"""A remote trainer's output turned into the LoRA file the local trainer would have written
(both remote backends: Replicate's archives and ComfyUI's kohya files).

Replicate trainers return their weights as an archive or a bare file: ``stability-ai/sdxl``
(cog-sdxl) a ``trained_model.tar`` holding ``lora.safetensors`` (old diffusers
attention-processor keys, ``down_blocks...attn1.processor.to_q_lora.down.weight``, no
``unet.`` prefix), ``embeddings.pti`` and ``special_params.json``; kohya-based trainers a
``.safetensors`` with ``lora_unet_...lora_down.weight`` keys and ``.alpha`` scalars.
:func:`lora_from_payload` picks the LoRA out of either, :func:`to_diffusers_keys` renames its
keys to the diffusers format ``save_lora`` writes (``unet.<module>.lora.down.weight``,
``text_encoder.<module>.lora_linear_layer.up.weight``), folding each kohya ``alpha / rank``
into the up weight so no alpha is needed, and :func:`verify_loads` loads the result into a
pipeline with ``load_lora_weights`` and checks every tensor found its layer.
"""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from style_pipeline.training.remote.base import RemoteTrainingError

if TYPE_CHECKING:
    import torch

PREFERRED_NAMES = ("lora.safetensors", "pytorch_lora_weights.safetensors")
KOHYA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")
COMPONENTS = ("unet", "text_encoder", "text_encoder_2")
SAFETENSORS_MAGIC_MAX_HEADER = 100 * 1024 * 1024  # a header past this is not a LoRA


def _pick(names: list[str], source: str) -> str:
    """The LoRA among an archive's members: a preferred name, else the only .safetensors."""
    tensors = [n for n in names if n.endswith(".safetensors")]
    for preferred in PREFERRED_NAMES:
        for name in tensors:
            if PurePosixPath(name).name == preferred:
                return name
    if len(tensors) == 1:
        return tensors[0]
    raise RemoteTrainingError(
        f"{source}: expected one .safetensors LoRA in the archive, found {tensors or 'none'} "
        f"among {names[:20]}"
    )


def lora_from_payload(payload: bytes, source: str) -> bytes:
    """The LoRA safetensors bytes from a downloaded ``.tar``, ``.zip`` or ``.safetensors``.

    Members are read, never extracted, so an archive's paths cannot escape anywhere.
    """
    if tarfile.is_tarfile(io.BytesIO(payload)):
        with tarfile.open(fileobj=io.BytesIO(payload)) as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}
            fh = tar.extractfile(members[_pick(list(members), source)])
            assert fh is not None  # a regular file always has a stream
            return fh.read()
    if zipfile.is_zipfile(io.BytesIO(payload)):
        with zipfile.ZipFile(io.BytesIO(payload)) as zf:
            return zf.read(_pick([n for n in zf.namelist() if not n.endswith("/")], source))
    header = int.from_bytes(payload[:8], "little") if len(payload) >= 8 else 0
    if 2 <= header <= min(SAFETENSORS_MAGIC_MAX_HEADER, len(payload) - 8):
        if payload[8:9] == b"{":
            return payload
    raise RemoteTrainingError(
        f"{source}: neither a tar, a zip nor a safetensors file ({len(payload)} bytes)"
    )


def _fold_kohya_alphas(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Kohya scales a layer by ``alpha / rank``: multiply it into ``lora_up`` and drop alpha."""
    out = {}
    for key, value in state.items():
        if key.endswith(".alpha"):
            continue
        if key.endswith(".lora_up.weight"):
            base = key.removesuffix(".lora_up.weight")
            alpha = state.get(f"{base}.alpha")
            if alpha is not None:
                rank = state[f"{base}.lora_down.weight"].shape[0]
                value = value * (float(alpha.item()) / rank)
        out[key] = value
    return out


def to_diffusers_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` renamed to the diffusers format (kohya, old diffusers or PEFT keys in)."""
    from diffusers.loaders.lora_conversion_utils import _convert_non_diffusers_lora_to_diffusers
    from diffusers.utils import convert_state_dict_to_diffusers, convert_unet_state_dict_to_peft
    from diffusers.utils.state_dict_utils import StateDictType, convert_state_dict_to_peft

    if not state:
        raise RemoteTrainingError("the LoRA file holds no tensors")
    if any(k.startswith(KOHYA_PREFIXES) for k in state):
        if any("input_blocks" in k or "output_blocks" in k for k in state):
            raise RemoteTrainingError(
                "kohya LoRA keys in the SGM (LDM) UNet layout are not converted here; "
                "load it with load_lora_weights(unet_config=...) instead"
            )
        state, _ = _convert_non_diffusers_lora_to_diffusers(_fold_kohya_alphas(dict(state)))
    if not any(k.split(".", 1)[0] in COMPONENTS for k in state):
        state = {f"unet.{k}": v for k, v in state.items()}  # cog-sdxl: a UNet-only file
    out: dict[str, torch.Tensor] = {}
    for component in COMPONENTS:
        part = {
            k.removeprefix(f"{component}."): v
            for k, v in state.items()
            if k.split(".", 1)[0] == component
        }
        if not part:
            continue
        if component == "unet":
            if not any(".lora_A" in k for k in part):
                part = convert_unet_state_dict_to_peft(part)
            part = convert_state_dict_to_diffusers(part, StateDictType.PEFT)
        elif any("_lora." in k or "lora_linear_layer" in k for k in part):
            part = convert_state_dict_to_diffusers(
                convert_state_dict_to_peft(part), StateDictType.PEFT
            )
        else:
            part = convert_state_dict_to_diffusers(part, StateDictType.PEFT)
        out.update({f"{component}.{k}": v for k, v in part.items()})
    left = set(state) - {k for k in state if k.split(".", 1)[0] in COMPONENTS}
    if left:
        raise RemoteTrainingError(f"LoRA keys of no known component: {sorted(left)[:5]}")
    return out


def write_diffusers_lora(payload: bytes, dest: Path, source: str) -> Path:
    """Pick the LoRA out of ``payload``, rename its keys and save it as ``dest``."""
    from safetensors.torch import load, save_file

    try:
        state = load(lora_from_payload(payload, source))
    except RemoteTrainingError:
        raise
    except Exception as exc:  # safetensors raises its own error types for a bad header
        raise RemoteTrainingError(f"{source}: not a readable safetensors LoRA: {exc}") from exc
    converted = {k: v.contiguous() for k, v in to_diffusers_keys(state).items()}
    dest.parent.mkdir(parents=True, exist_ok=True)
    save_file(converted, str(dest), metadata={"format": "pt", "source": source})
    return dest


def verify_loads(weights: Path, pipeline_dir: Path) -> int:
    """Load ``weights`` into the pipeline at ``pipeline_dir``; the number of LoRA layers.

    Raises :class:`RemoteTrainingError` when loading fails or a tensor found no layer
    (diffusers only warns about unexpected keys).
    """
    from peft.utils import get_peft_model_state_dict
    from safetensors import safe_open

    from style_pipeline.models.diffusion import load_pipeline

    with safe_open(str(weights), framework="pt") as fh:
        keys = list(fh.keys())
    pipe = load_pipeline(pipeline_dir)
    try:
        pipe.load_lora_weights(str(weights.parent), weight_name=weights.name, adapter_name="check")
    except Exception as exc:  # diffusers raises ValueError/KeyError/RuntimeError by format
        raise RemoteTrainingError(f"{weights.name} does not load: {exc}") from exc
    loaded = 0
    for component in COMPONENTS:
        expected = sum(k.startswith(f"{component}.") for k in keys)
        model = getattr(pipe, component, None)
        got = 0
        if expected and model is not None and getattr(model, "peft_config", None):
            got = len(get_peft_model_state_dict(model, adapter_name="check"))
        if got != expected:
            raise RemoteTrainingError(
                f"{weights.name}: {expected} {component} tensors, {got} loaded into the model"
            )
        loaded += got // 2
    return loaded
