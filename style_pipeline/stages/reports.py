"""Pictures of a day's results for the Dagster UI, written to ``reports/<asset>/<date>/``.

- ``frame_strips``: the kept frames (selection order) and the dropped ones (round-robin
  over their reason codes, best first), as two labelled contact sheets;
- ``loss_curve``: a LoRA's per-step loss as a PNG plus a thinned step/loss series;
- ``sample_grid_picture``: an evaluation's samples as a prompt x seed grid.

The asset turns what these return into markdown metadata (``defs/metadata.py``).
A picture that cannot be made never fails the asset: the caller logs ``None`` results.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl
from PIL import Image

from style_pipeline.contracts.orchestration import PictureSettings
from style_pipeline.media.pictures import (
    Tile,
    contact_sheet,
    jpeg_bytes,
    loss_curve_png,
    open_rgb,
    sample_grid,
    thin_series,
)
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

SHORT_ID = 8
# 4 tiles a row: a sheet of 8 fits the width of Dagster's markdown dialog (~1,000 px)
STRIP_COLUMNS = 4


@dataclass(frozen=True)
class StripItem:
    """One frame on a strip: its id, what was decided and why."""

    frame_id: str
    code: str
    role: str | None
    quality: float | None
    reason: str

    @property
    def short_id(self) -> str:
        return self.frame_id[:SHORT_ID]


@dataclass(frozen=True)
class FrameStrips:
    kept_key: str
    dropped_key: str
    kept: tuple[StripItem, ...]
    dropped: tuple[StripItem, ...]
    kept_total: int
    dropped_total: int


def frame_strips(
    curated: pl.DataFrame, store: Store, partition: str, settings: PictureSettings
) -> FrameStrips:
    """Write the kept and dropped contact sheets of a ``curated_frames`` table."""
    kept_rows = _kept_order(curated.filter(pl.col("keep")))
    dropped_rows = _dropped_order(curated.filter(~pl.col("keep")))
    n = settings.frames_per_strip
    kept = tuple(_item(row) for row in kept_rows.head(n).iter_rows(named=True))
    dropped = tuple(_item(row) for row in dropped_rows.head(n).iter_rows(named=True))
    paths = dict(zip(curated["frame_id"], curated["path"], strict=True))
    keys = []
    for name, items in (("kept.jpg", kept), ("dropped.jpg", dropped)):
        tiles = [
            Tile(
                _frame_image(store, paths[item.frame_id], settings.thumbnail_edge),
                _tile_lines(item),
            )
            for item in items
        ]
        key = layout.report_key(layout.CURATED_FRAMES, partition, name)
        sheet = contact_sheet(tiles, settings.thumbnail_edge, columns=STRIP_COLUMNS)
        store.put_bytes(jpeg_bytes(sheet), key)
        keys.append(key)
    return FrameStrips(keys[0], keys[1], kept, dropped, len(kept_rows), len(dropped_rows))


@dataclass(frozen=True)
class LossCurve:
    key: str
    series: tuple[tuple[int, float], ...]


def loss_curve(
    losses: Sequence[float], title: str, store: Store, partition: str, settings: PictureSettings
) -> LossCurve:
    """Write ``reports/lora_weights/<date>/loss.png`` and return the thinned series."""
    key = layout.report_key(layout.LORA_WEIGHTS, partition, "loss.png")
    store.put_bytes(loss_curve_png(losses, title), key)
    return LossCurve(key, tuple(thin_series(losses, settings.loss_points)))


def sample_grid_picture(
    samples: Sequence[tuple[str, int, Image.Image]],
    title: str,
    store: Store,
    partition: str,
    settings: PictureSettings,
) -> str:
    """Write ``reports/metrics/<date>/grid.jpg`` (rows: prompts, columns: seeds)."""
    prompts = list(dict.fromkeys(prompt for prompt, _, _ in samples))
    seeds = list(dict.fromkeys(seed for _, seed, _ in samples))
    by_cell = {(prompt, seed): image for prompt, seed, image in samples}
    blank = Image.new("RGB", (8, 8), (60, 60, 60))
    cells = [[by_cell.get((p, s), blank) for s in seeds] for p in prompts]
    grid = sample_grid(cells, prompts, [f"seed {s}" for s in seeds], settings.grid_edge, title)
    key = layout.report_key(layout.METRICS, partition, "grid.jpg")
    store.put_bytes(jpeg_bytes(grid, quality=90), key)
    return key


def _kept_order(kept: pl.DataFrame) -> pl.DataFrame:
    """Selection order (``pick``) when the table has it, best quality first otherwise."""
    by = [c for c in ("pick", "quality") if c in kept.columns]
    if not by:
        return kept
    return kept.sort(by, descending=[c == "quality" for c in by], nulls_last=True)


def _dropped_order(dropped: pl.DataFrame) -> pl.DataFrame:
    """Round-robin over reason codes (most frequent code first), best quality first in each:
    the first few tiles show every kind of drop rather than eight of the commonest."""
    if dropped.is_empty():
        return dropped
    quality = "quality" if "quality" in dropped.columns else "frame_id"
    ranked = dropped.with_columns(
        pl.col(quality).rank("ordinal", descending=True).over("code").alias("_within"),
        pl.len().over("code").alias("_count"),
    )
    return ranked.sort(["_within", "_count", "code"], descending=[False, True, False]).drop(
        "_within", "_count"
    )


def _item(row: dict) -> StripItem:
    quality = row.get("quality")
    return StripItem(
        frame_id=row["frame_id"],
        code=row.get("code") or ("kept" if row.get("keep") else "dropped"),
        role=row.get("role"),
        quality=float(quality) if quality is not None else None,
        reason=row.get("reason") or "",
    )


def _tile_lines(item: StripItem) -> tuple[str, ...]:
    first = item.short_id + (f" · {item.role}" if item.role else "")
    second = item.code + (f" · q {item.quality:.2f}" if item.quality is not None else "")
    return first, second


def _frame_image(store: Store, key: str, edge: int) -> Image.Image:
    try:
        return open_rgb(store.read_bytes(key), edge)
    except (FileNotFoundError, OSError, ValueError):
        return Image.new("RGB", (edge, edge), (90, 30, 30))  # the tile says the file is gone
