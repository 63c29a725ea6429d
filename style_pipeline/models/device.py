"""Pick the torch device (CUDA, then Apple MPS, then CPU, unless the config names one), the
precision fallbacks, the input dtype a model expects and a batch size from free memory."""

from __future__ import annotations

import torch

from style_pipeline.contracts.models import DevicePreference, Precision


def available_devices() -> list[str]:
    """Devices usable in this process, best first (``cpu`` is always last)."""
    devices = []
    if torch.cuda.is_available():
        devices.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    devices.append("cpu")
    return devices


def pick_device(preference: DevicePreference = "auto") -> torch.device:
    """``auto`` -> cuda > mps > cpu; an explicit device must be available or this raises."""
    devices = available_devices()
    if preference == "auto":
        return torch.device(devices[0])
    if preference not in devices:
        raise RuntimeError(
            f"device {preference!r} was requested but is not available (available: {devices})"
        )
    return torch.device(preference)


PRECISION_DTYPES: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}
# What to try, in order, when a precision cannot run on a device: fp16 -> bf16 -> fp32.
_FALLBACKS: dict[str, tuple[Precision, ...]] = {
    "fp16": ("fp16", "bf16", "fp32"),
    "bf16": ("bf16", "fp32"),
    "fp32": ("fp32",),
}


def precision_candidates(precision: str) -> tuple[Precision, ...]:
    """``precision`` then the ones to fall back to if it cannot run (fp32 always last)."""
    if precision not in _FALLBACKS:
        raise ValueError(f"unknown precision {precision!r} (one of {sorted(_FALLBACKS)})")
    return _FALLBACKS[precision]


def weight_dtype(module: torch.nn.Module) -> torch.dtype:
    """The dtype a module's input must have: its first convolution's or linear layer's weight.

    open_clip's ``fp16``/``bf16`` keep LayerNorms (and some embeddings) in float32, so the
    first parameter is not a reliable answer; the layers an input meets first are.
    """
    for sub in module.modules():
        if isinstance(sub, torch.nn.Conv2d | torch.nn.Linear):
            return sub.weight.dtype
    for param in module.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def free_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device (``torch.cuda.mem_get_info``); None elsewhere."""
    if device.type != "cuda":
        return None
    free, _total = torch.cuda.mem_get_info(device)
    return int(free)


def auto_batch_size(
    device: torch.device,
    bytes_per_item: int,
    *,
    cpu_default: int = 32,
    budget: float = 0.5,
    lowest: int = 8,
    highest: int = 1024,
) -> int:
    """A batch size that fits ``budget`` of the free CUDA memory (a multiple of 8), else
    ``cpu_default`` (CPU and MPS: larger batches buy nothing there)."""
    free = free_memory(device)
    if free is None:
        return cpu_default
    fits = int(free * budget) // max(int(bytes_per_item), 1)
    return max(lowest, min(highest, fits // 8 * 8))
