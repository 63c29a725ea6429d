"""Loss masks for masked training: where in an image the loss counts, from boxes.

A mask is a grayscale PNG of the image's size written next to it, ``<frame>.mask.png``
(255: full weight, 0: the background), listed in ``metadata.jsonl`` as ``mask``. Here it is
drawn from the face boxes of the ``faces`` asset (frame pixels; the training folder keeps
the frame's bytes, so the boxes fit the image as is), each grown by ``padding`` of its size
on every side (a detector's face box leaves out the hair and chin), or from any subject
boxes a caller has. ``data.render_mask`` resizes, crops and flips it exactly like the
image; ``loss_reduction.reduce_loss`` averages it down to the latent size
(:func:`downsample_mask`) and weighs the loss with it (kohya's ``masked_loss``).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels
MASK_SUFFIX = ".mask.png"


def padded_box(box: Box, padding: float, width: int, height: int) -> tuple[int, int, int, int]:
    """``box`` grown by ``padding`` x its width / height on each side, clipped to the image,
    as whole pixels (x0, y0 inclusive; x1, y1 exclusive)."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty box {box}")
    dx, dy = (x1 - x0) * padding, (y1 - y0) * padding
    return (
        max(0, int(x0 - dx)),
        max(0, int(y0 - dy)),
        min(width, round(x1 + dx)),
        min(height, round(y1 + dy)),
    )


def box_mask(width: int, height: int, boxes: Sequence[Box], padding: float = 0.0) -> Image.Image:
    """An ``L`` image of ``width`` x ``height``: 255 inside the (padded) boxes, 0 elsewhere."""
    if not boxes:
        raise ValueError("a mask needs at least one box")
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    for box in boxes:
        x0, y0, x1, y1 = padded_box(box, padding, width, height)
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), fill=255)
    return mask


def mask_png(width: int, height: int, boxes: Sequence[Box], padding: float = 0.0) -> bytes:
    """:func:`box_mask` encoded as PNG (deterministic bytes for the same boxes)."""
    buffer = io.BytesIO()
    box_mask(width, height, boxes, padding).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def downsample_mask(mask: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """A (..., 1, H, W) mask averaged down to ``size`` (h, w), kohya's
    ``interpolate(mode="area")``; returned unchanged when it already has that size."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    flat = mask.reshape(-1, 1, *mask.shape[-2:]).float()
    small = F.interpolate(flat, size=tuple(size), mode="area")
    return small.reshape(*mask.shape[:-2], *small.shape[-2:])
