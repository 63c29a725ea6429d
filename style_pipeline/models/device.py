"""Pick the torch device: CUDA, then Apple MPS, then CPU, unless the config names one."""

from __future__ import annotations

import torch

from style_pipeline.contracts.models import DevicePreference


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
