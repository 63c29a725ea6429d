"""Aspect-ratio buckets in the style of kohya sd-scripts (``make_bucket_resolutions``).

Buckets are (width, height) pairs, multiples of ``step``, with area at most
``resolution**2`` and both sides within ``[min_size, max_size]``. An image goes to the
bucket whose aspect ratio is nearest to its own (kohya's ``BucketManager.select_bucket``).
"""

from __future__ import annotations

import math

Bucket = tuple[int, int]


def bucket_limits(resolution: int, step: int = 64) -> tuple[int, int]:
    """kohya's defaults scaled to ``resolution``: half of it to twice it, on the ``step`` grid."""
    if step <= 0 or resolution < step:
        raise ValueError(f"need 0 < step <= resolution, got step={step}, resolution={resolution}")
    min_size = max(step, (resolution // 2) // step * step)
    return min_size, resolution * 2


def make_buckets(
    resolution: int, step: int = 64, min_size: int | None = None, max_size: int | None = None
) -> list[Bucket]:
    """All bucket resolutions for a square training ``resolution`` (sorted, includes the square)."""
    default_min, default_max = bucket_limits(resolution, step)
    min_size = default_min if min_size is None else min_size
    max_size = default_max if max_size is None else max_size
    if min_size % step or max_size % step or min_size > max_size:
        raise ValueError(f"bad bucket limits {min_size}..{max_size} for step {step}")
    max_area = resolution * resolution
    side = int(math.sqrt(max_area) // step) * step
    buckets: set[Bucket] = {(side, side)}
    for width in range(min_size, max_size + 1, step):
        height = min(max_size, (max_area // width) // step * step)
        if height >= min_size:
            buckets.add((width, height))
            buckets.add((height, width))
    return sorted(buckets)


def select_bucket(width: int, height: int, buckets: list[Bucket]) -> Bucket:
    """The bucket whose aspect ratio is closest to ``width / height`` (ties: the first)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if not buckets:
        raise ValueError("no buckets to choose from")
    ratio = width / height
    return min(buckets, key=lambda b: abs(b[0] / b[1] - ratio))


def bucket_name(bucket: Bucket) -> str:
    return f"{bucket[0]}x{bucket[1]}"


def resize_crop_box(width: int, height: int, bucket: Bucket) -> tuple[tuple[int, int], tuple]:
    """Resized size that covers ``bucket`` keeping the aspect ratio, and the centre crop box."""
    bw, bh = bucket
    scale = max(bw / width, bh / height)
    new_w, new_h = max(bw, round(width * scale)), max(bh, round(height * scale))
    left, top = (new_w - bw) // 2, (new_h - bh) // 2
    return (new_w, new_h), (left, top, left + bw, top + bh)
