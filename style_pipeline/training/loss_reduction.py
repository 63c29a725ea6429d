"""The last step of every family's loss: per-element loss to the batch's scalar.

Kept apart from ``objective.py`` (SD/SDXL) and ``flow_matching.py`` (FLUX) so both end
here without importing each other.
"""

from __future__ import annotations

import torch

from style_pipeline.contracts.training import LoraTrainingConfig

__all__ = ["reduce_loss"]


def reduce_loss(
    per_element: torch.Tensor,
    batch: dict,
    config: LoraTrainingConfig,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """The batch's loss from the per-element loss ``(B, C, h, w)`` (every family's objective
    ends here, FLUX's flow matching too, after unpacking its latents).

    - ``masked_loss`` and a batch with ``masks`` (B, 1, H, W) in [0, 1]: kohya's masked
      loss, the mask averaged down to the latent size (``interpolate(mode="area")``) and
      multiplied into the loss per latent pixel, the mean still taken over every element (a
      small face weighs little). Outside the mask the weight is ``mask_background_weight``
      (kohya: 0), so the background is down-weighted, not ignored, unless that is 0.
    - ``weights`` (B,): per-example weights, e.g. Min-SNR's.
    - ``is_reg`` (B,) bool in the batch: regularization examples' loss times
      ``prior_loss_weight`` (kohya, diffusers' DreamBooth).

    The mean over elements, then over examples; with none of the above it is the plain
    mean, bit-identical to ``F.mse_loss(reduction="mean")``.
    """
    from style_pipeline.training.masks import downsample_mask

    loss = per_element.float()
    if config.masked_loss and "masks" in batch:
        mask = downsample_mask(batch["masks"].to(loss.device), tuple(loss.shape[-2:]))
        floor = config.mask_background_weight
        loss = loss * (floor + (1 - floor) * mask.to(loss.dtype))
    reg = batch.get("is_reg")
    prior = reg is not None and bool(reg.any()) and config.prior_loss_weight != 1
    if weights is None and not prior:
        return loss.mean()
    per_example = loss.mean(dim=list(range(1, loss.ndim)))
    if weights is not None:
        per_example = per_example * weights
    if prior:
        assert reg is not None
        scale = torch.where(reg.to(loss.device), config.prior_loss_weight, 1.0)
        per_example = per_example * scale
    return per_example.mean()
