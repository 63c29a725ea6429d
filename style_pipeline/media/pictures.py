"""Pictures for people: labelled contact sheets, prompt x seed sample grids, loss curves.

Pure functions from images (or numbers) to an image or encoded bytes; the stages decide
what to show and where it is stored. Labels are drawn with Pillow's bundled font, the loss
curve with matplotlib's Agg canvas (no display, no global pyplot state), so both work in
a step process on a headless machine.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

BACKGROUND = (24, 24, 27)
LABEL = (228, 228, 231)
MUTED = (161, 161, 170)
LINE_HEIGHT = 15
FONT_SIZE = 12


@dataclass(frozen=True)
class Tile:
    """One picture of a sheet and up to two short lines under it."""

    image: Image.Image
    lines: tuple[str, ...] = ()


def contact_sheet(tiles: Sequence[Tile], edge: int, columns: int = 8, pad: int = 6) -> Image.Image:
    """``tiles`` fitted into ``edge`` x ``edge`` boxes, ``columns`` per row, labels below.

    The sheet is as narrow as its tiles need (fewer tiles than ``columns``: one short row);
    an empty ``tiles`` gives a small sheet that says so.
    """
    if not tiles:
        return _note("no frames", edge)
    columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / columns)
    label_lines = max((len(t.lines) for t in tiles), default=0)
    cell_w, cell_h = edge + pad, edge + pad + label_lines * LINE_HEIGHT
    sheet = Image.new("RGB", (columns * cell_w + pad, rows * cell_h + pad), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font()
    for index, tile in enumerate(tiles):
        x = pad + (index % columns) * cell_w
        y = pad + (index // columns) * cell_h
        _paste_fitted(sheet, tile.image, x, y, edge)
        for line_no, text in enumerate(tile.lines):
            colour = LABEL if line_no == 0 else MUTED
            draw.text(
                (x, y + edge + 2 + line_no * LINE_HEIGHT), _clip(text, edge, font), colour, font
            )
    return sheet


def sample_grid(
    cells: Sequence[Sequence[Image.Image]],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    edge: int,
    title: str = "",
    pad: int = 6,
) -> Image.Image:
    """A grid of images (rows: prompts, columns: seeds) with a title and axis labels."""
    if not cells or not cells[0]:
        return _note("no samples", edge)
    if len(row_labels) != len(cells) or any(len(r) != len(column_labels) for r in cells):
        raise ValueError("sample_grid: labels do not match the cells")
    font = _font()
    widest = max(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(t, font) for t in row_labels)
    label_w = min(edge, widest + 2 * pad)  # long prompts wrap over several lines
    label_w = int(max(label_w, 40))
    top = (LINE_HEIGHT + pad if title else 0) + LINE_HEIGHT
    width = label_w + len(column_labels) * (edge + pad) + pad
    height = top + len(cells) * (edge + pad) + pad
    grid = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((pad, pad), _clip(title, width - 2 * pad, font), LABEL, font)
    for c, label in enumerate(column_labels):
        draw.text((label_w + c * (edge + pad), top - LINE_HEIGHT), label, MUTED, font)
    for r, row in enumerate(cells):
        y = top + r * (edge + pad)
        _wrap_into(draw, row_labels[r], (pad, y), label_w - 2 * pad, edge, font)
        for c, image in enumerate(row):
            _paste_fitted(grid, image, label_w + c * (edge + pad), y, edge)
    return grid


def side_by_side(left: Image.Image, right: Image.Image, gap: int = 12) -> Image.Image:
    """Two pictures next to each other, tops aligned (e.g. this LoRA's grid and the last)."""
    width = left.width + gap + right.width
    out = Image.new("RGB", (width, max(left.height, right.height)), BACKGROUND)
    out.paste(left.convert("RGB"), (0, 0))
    out.paste(right.convert("RGB"), (left.width + gap, 0))
    return out


def loss_curve_png(
    losses: Sequence[float],
    title: str = "",
    width_px: int = 360,
    height_px: int = 230,
    *,
    validation: Sequence[tuple[int, float]] = (),
    best_step: int | None = None,
    series: str | None = None,
) -> bytes:
    """The per-step loss (thin) and its moving average (thick) as PNG bytes; validation
    points (line with markers) and a dashed line at ``best_step`` when given.

    ``series`` names the per-step loss in the legend (``train``: "train loss"). 360 px wide
    by default: Dagster shows markdown under 1,000 characters inline in the value column of
    an asset page's metadata table, about 380 px wide on a 1280 px screen.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    axes = figure.add_subplot()
    steps = list(range(1, len(losses) + 1))
    finite = [v if math.isfinite(v) else float("nan") for v in losses]
    label = f"{series} loss" if series else "loss per step"
    axes.plot(steps, finite, color="#93c5fd", linewidth=0.8, label=label)
    window = max(1, len(finite) // 20)
    if window > 1:
        mean_label = f"{series}, mean of {window}" if series else f"mean of {window} steps"
        axes.plot(steps, moving_average(finite, window), color="#1d4ed8", linewidth=2,
                  label=mean_label)  # fmt: skip
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


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over up to ``window`` values (NaNs skipped; all-NaN -> NaN)."""
    out: list[float] = []
    for i in range(len(values)):
        span = [v for v in values[max(0, i - window + 1) : i + 1] if not math.isnan(v)]
        out.append(sum(span) / len(span) if span else float("nan"))
    return out


def thin_series(values: Sequence[float], points: int) -> list[tuple[int, float]]:
    """``(step, value)`` pairs, at most ``points`` of them, always with the first and last."""
    n = len(values)
    if n <= points:
        return [(i + 1, float(v)) for i, v in enumerate(values)]
    picks = sorted({round(i * (n - 1) / (points - 1)) for i in range(points)})
    return [(i + 1, float(values[i])) for i in picks]


def jpeg_bytes(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=quality, optimize=True)
    return out.getvalue()


def png_bytes(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


def open_rgb(data: bytes, edge: int | None = None) -> Image.Image:
    """Decode image bytes to RGB; JPEGs decoded at a reduced scale when ``edge`` allows."""
    with Image.open(io.BytesIO(data)) as source:
        if edge:
            source.draft("RGB", (edge, edge))
        return source.convert("RGB")


def _paste_fitted(canvas: Image.Image, image: Image.Image, x: int, y: int, edge: int) -> None:
    """``image`` scaled (down or up) to fit an ``edge`` box, centred in it."""
    scale = edge / max(image.width, image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    # small samples (a tiny model's 64 px) are enlarged with hard pixel edges, not blurred
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST
    fitted = image.convert("RGB").resize(size, resample)
    canvas.paste(fitted, (x + (edge - fitted.width) // 2, y + (edge - fitted.height) // 2))


def _font() -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (TypeError, OSError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _clip(text: str, width: int, font) -> str:
    """``text`` shortened with an ellipsis to fit ``width`` pixels."""
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength
    if measure(text, font) <= width:
        return text
    while text and measure(text + "…", font) > width:
        text = text[:-1]
    return text + "…"


def _wrap_into(draw: ImageDraw.ImageDraw, text: str, at: tuple[int, int], width: int,
               height: int, font) -> None:  # fmt: skip
    """Greedy word wrap of ``text`` into a ``width`` x ``height`` box (clipped)."""
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(lines[-1] + " " + word, font) <= width:
            lines[-1] += " " + word
        else:
            lines.append(_clip(word, width, font))
    for n, line in enumerate(lines[: max(1, height // LINE_HEIGHT)]):
        draw.text((at[0], at[1] + n * LINE_HEIGHT), line, LABEL, font)


def _note(text: str, edge: int) -> Image.Image:
    image = Image.new("RGB", (max(edge, 120), LINE_HEIGHT * 2), BACKGROUND)
    ImageDraw.Draw(image).text((6, 8), text, MUTED, _font())
    return image
