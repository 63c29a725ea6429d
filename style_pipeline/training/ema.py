"""An exponential moving average of the trainable (LoRA) weights.

``ema_decay`` on: after every optimisation step the average moves towards the live
weights, ``ema = ema * d + live * (1 - d)`` with diffusers' ``EMAModel`` warm-up
``d = min(ema_decay, (1 + n) / (10 + n))`` (``n``: updates so far), so a short run is
not dominated by the random initial adapters. Validation and the published weights use
the average (:meth:`LoraEma.applied`); the live weights keep training. The average is
kept in float32 on the weights' device and saved in checkpoints (:meth:`state`), so a
resumed run continues it bit for bit.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch


class LoraEma:
    """The moving average of ``params`` (in the order given)."""

    def __init__(self, params: Sequence[torch.nn.Parameter], decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"ema_decay must be in (0, 1), got {decay}")
        self.params = list(params)
        self.decay = decay
        self.updates = 0
        self.shadow = [p.detach().to(torch.float32, copy=True) for p in self.params]

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the live weights (call after each optimisation step)."""
        weight = 1.0 - self.current_decay()
        for shadow, p in zip(self.shadow, self.params, strict=True):
            shadow.lerp_(p.detach().to(torch.float32), weight)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        """The averaged weights in the model for the block; the live ones restored after."""
        live = [p.detach().clone() for p in self.params]
        self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, saved in zip(self.params, live, strict=True):
                    p.copy_(saved)

    @torch.no_grad()
    def copy_to(self) -> None:
        """Write the average into the live weights (for saving; training is over)."""
        for p, shadow in zip(self.params, self.shadow, strict=True):
            p.copy_(shadow.to(p.dtype))

    def state(self) -> tuple[dict, dict[str, torch.Tensor]]:
        """(JSON part, tensors) for a checkpoint."""
        tensors = {
            f"ema/{i}": s.detach().to("cpu", copy=True).contiguous()
            for i, s in enumerate(self.shadow)
        }
        return {"updates": self.updates, "decay": self.decay}, tensors

    @torch.no_grad()
    def load_state(self, saved: dict, tensors: dict[str, torch.Tensor]) -> None:
        if len([k for k in tensors if k.startswith("ema/")]) != len(self.shadow):
            raise ValueError("checkpoint EMA state does not match the trainable parameters")
        self.updates = int(saved["updates"])
        for i, shadow in enumerate(self.shadow):
            shadow.copy_(tensors[f"ema/{i}"])
