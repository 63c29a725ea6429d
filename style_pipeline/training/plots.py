"""The loss curve of a LoRA run as a PNG: the training loss per step, its moving average,
the validation losses and the step whose weights were kept.

Drawn on matplotlib's Agg canvas (no display, no global pyplot state): it works in a
trainer process on a headless machine. 480 x 260 px: readable in Dagster's metadata
dialog and small enough to store beside every version's weights.
"""

from __future__ import annotations

from collections.abc import Sequence

from style_pipeline.media import pictures

CURVE_NAME = "loss_curve.png"


def loss_curve_png(
    losses: Sequence[float],
    validation: Sequence[tuple[int, float]] = (),
    best_step: int | None = None,
    title: str = "",
    width_px: int = 480,
    height_px: int = 260,
) -> bytes:
    """PNG bytes: train loss per step (thin), its mean (thick), validation points (line
    with markers) and a dashed line at ``best_step`` when given (drawn by
    :func:`style_pipeline.media.pictures.loss_curve_png`)."""
    return pictures.loss_curve_png(
        losses, title, width_px, height_px,
        validation=validation, best_step=best_step, series="train",
    )  # fmt: skip
