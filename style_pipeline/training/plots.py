"""The loss curve of a LoRA run as a PNG: the training loss per step, its moving average,
the validation losses and the step whose weights were kept.

Drawn on matplotlib's Agg canvas (no display, no global pyplot state): it works in a
trainer process on a headless machine. 480 x 260 px: readable in Dagster's metadata
dialog and small enough to store beside every version's weights.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

from style_pipeline.media.pictures import moving_average

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
    with markers) and a dashed line at ``best_step`` when given."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    axes = figure.add_subplot()
    steps = list(range(1, len(losses) + 1))
    finite = [v if math.isfinite(v) else float("nan") for v in losses]
    axes.plot(steps, finite, color="#93c5fd", linewidth=0.8, label="train loss")
    window = max(1, len(finite) // 20)
    if window > 1:
        axes.plot(steps, moving_average(finite, window), color="#1d4ed8", linewidth=2,
                  label=f"train, mean of {window}")  # fmt: skip
    if validation:
        axes.plot([s for s, _ in validation], [v for _, v in validation], color="#ea580c",
                  marker="o", markersize=4, linewidth=1.5, label="validation loss")  # fmt: skip
    if best_step is not None:
        axes.axvline(best_step, color="#16a34a", linestyle="--", linewidth=1,
                     label=f"kept: step {best_step}")  # fmt: skip
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.tick_params(labelsize=8)
    axes.set_xlabel("step", fontsize=9)
    axes.set_ylabel("loss", fontsize=9)
    if title:
        axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    if steps:
        axes.set_xlim(1, max(2, len(steps)))
    axes.legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()
