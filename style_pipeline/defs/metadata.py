"""Helpers that turn results into Dagster metadata: counts, markdown samples, table
schemas, and markdown with pictures (frame strips, loss curves, sample grids)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import dagster as dg
import polars as pl

from style_pipeline.contracts.training import MetricsDocument
from style_pipeline.settings import Settings
from style_pipeline.storage.store import Store

if TYPE_CHECKING:
    from style_pipeline.stages.reports import StripItem

Log = Callable[[str], None]


def counts_by(table: pl.DataFrame, column: str) -> dict[str, int]:
    """``{value: count}`` of one column, sorted by value; nulls counted as ``"none"``."""
    if table.is_empty():
        return {}
    counts = table.group_by(column).len().sort(column, nulls_last=True)
    return {str(k) if k is not None else "none": int(n) for k, n in counts.iter_rows()}


def sample_table(table: pl.DataFrame, columns: list[str], rows: int = 8) -> dg.MetadataValue:
    """The first ``rows`` rows of ``columns`` as a markdown table for the asset's UI page."""
    if table.is_empty():
        return dg.MetadataValue.md("_no rows_")
    head = table.select(columns).head(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in head.iter_rows():
        lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
    if len(table) > rows:
        lines.append(f"\n_{len(table) - rows} more rows_")
    return dg.MetadataValue.md("\n".join(lines))


def _cell(value) -> str:
    text = "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
    return text.replace("|", "\\|").replace("\n", "\\n")[:80]


def column_schema(table: pl.DataFrame) -> dg.TableSchema:
    """The table's columns and polars types as a Dagster schema.

    Every table asset's frame is typed from its record contract (``storage.tables``), so
    this is the contract's schema, empty partitions included.
    """
    return dg.TableSchema(
        columns=[dg.TableColumn(name=name, type=str(dtype)) for name, dtype in table.schema.items()]
    )


def table_metadata(table: pl.DataFrame) -> dict[str, dg.MetadataValue]:
    """``dagster/row_count`` and ``dagster/column_schema`` of a table asset's output."""
    return {
        "dagster/row_count": dg.MetadataValue.int(len(table)),
        "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(table)),
    }


# Pictures ---------------------------------------------------------------------------------
# Dagster's UI renders markdown images from http(s) URLs only (no data: URIs), so pictures
# are stored under reports/ and served by `style-pipeline serve` at /pictures/<key>.


def picture_url(base_url: str, key: str) -> str:
    """The web app's URL of a stored picture (``layout.is_public_picture`` keys)."""
    return f"{base_url}/pictures/{key}"


def thumb_url(base_url: str, partition: str, frame_id: str) -> str:
    """The web app's thumbnail of one frame of a day."""
    return f"{base_url}/thumb/{partition}/{frame_id}.jpg"


def strip_markdown(
    title: str,
    url: str,
    location: str,
    items: Sequence[StripItem],
    total: int,
    base_url: str,
    partition: str,
) -> dg.MetadataValue:
    """A contact sheet, where it is stored, and one table row per frame on it."""
    lines = [
        f"![{title}]({url})",
        "",
        f"{len(items)} of {total} {title} · [open]({url}) · `{location}`",
    ]
    if items:
        lines += [
            "",
            "| # | frame | role | decision | quality | why |",
            "|---|---|---|---|---|---|",
        ]
        for n, item in enumerate(items, 1):
            quality = f"{item.quality:.3f}" if item.quality is not None else ""
            link = f"[`{item.short_id}`]({thumb_url(base_url, partition, item.frame_id)})"
            lines.append(
                f"| {n} | {link} | {item.role or ''} | {item.code} | {quality} | "
                f"{_cell(item.reason)} |"
            )
    return dg.MetadataValue.md("\n".join(lines))


def loss_markdown(url: str, location: str, losses: Sequence[float]) -> dg.MetadataValue:
    """The loss-curve picture with its headline numbers."""
    finite = [(n, v) for n, v in enumerate(losses, 1) if math.isfinite(v)]
    summary = f"{len(losses)} steps"
    if finite:
        best_step, best = min(finite, key=lambda p: p[1])
        summary += (
            f" · first {finite[0][1]:.4f} · final {finite[-1][1]:.4f}"
            f" · lowest {best:.4f} at step {best_step}"
        )
    return dg.MetadataValue.md(f"![loss curve]({url})\n\n{summary} · [open]({url}) · `{location}`")


def series_table(series: Sequence[tuple[int, float]]) -> dg.MetadataValue:
    """``(step, loss)`` rows as a Dagster table."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({"step": step, "loss": round(loss, 6)}) for step, loss in series],
        schema=dg.TableSchema(
            columns=[dg.TableColumn("step", "int"), dg.TableColumn("loss", "float")]
        ),
    )


def grid_markdown(
    current: tuple[str, str], previous: tuple[str, str] | None, samples: Sequence[tuple[str, str]]
) -> dg.MetadataValue:
    """This evaluation's sample grid beside the previous one's, then a link per sample.

    ``current`` / ``previous``: (heading, picture URL); ``samples``: (label, URL).
    """
    heads = [current[0]] + ([previous[0]] if previous else [])
    cells = [f"![{current[0]}]({current[1]})"] + (
        [f"![{previous[0]}]({previous[1]})"] if previous else []
    )
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    lines.append("| " + " | ".join(cells) + " |")
    if not previous:
        lines += ["", "_no earlier evaluation with a stored grid to compare with_"]
    if samples:
        lines += ["", "Every sample: " + " · ".join(f"[{label}]({url})" for label, url in samples)]
    return dg.MetadataValue.md("\n".join(lines))


def frame_strip_metadata(
    table: pl.DataFrame, store: Store, partition: str, settings: Settings, warn: Log
) -> dict[str, dg.MetadataValue]:
    """``kept_frames`` and ``dropped_frames`` strips of a ``curated_frames`` table."""
    if not settings.pictures.enabled:
        return {}
    from style_pipeline.stages.reports import frame_strips

    try:
        strips = frame_strips(table, store, partition, settings.pictures)
    except Exception as err:  # noqa: BLE001 - a picture must never fail the asset
        warn(f"frame strips not drawn: {err!r}")
        return {}
    base = settings.serving.base_url()
    sheets = (
        ("kept_frames", "kept frames", strips.kept_key, strips.kept, strips.kept_total),
        ("dropped_frames", "dropped frames", strips.dropped_key, strips.dropped,
         strips.dropped_total),
    )  # fmt: skip
    return {
        name: strip_markdown(
            title, picture_url(base, key), str(store.path(key)), items, total, base, partition
        )
        for name, title, key, items, total in sheets
    }


def loss_metadata(
    losses: Sequence[float], title: str, store: Store, partition: str, settings: Settings,
    warn: Log,
) -> dict[str, dg.MetadataValue]:  # fmt: skip
    """``loss_curve`` (picture + numbers) and ``loss_series`` (step/loss table)."""
    if not settings.pictures.enabled or not losses:
        return {}
    from style_pipeline.stages.reports import loss_curve

    try:
        curve = loss_curve(losses, title, store, partition, settings.pictures)
    except Exception as err:  # noqa: BLE001 - a picture must never fail the asset
        warn(f"loss curve not drawn: {err!r}")
        return {}
    url = picture_url(settings.serving.base_url(), curve.key)
    return {
        "loss_curve": loss_markdown(url, str(store.path(curve.key)), losses),
        "loss_series": series_table(curve.series),
    }


def samples_metadata(
    document: MetricsDocument, partition: str, store: Store, settings: Settings
) -> dict[str, dg.MetadataValue]:
    """``sample_grid`` (this LoRA's grid beside the previous one's, every sample linked)
    and ``samples_folder`` (where the PNGs are)."""
    base = settings.serving.base_url()
    out: dict[str, dg.MetadataValue] = {}
    if document.samples:
        folder = document.samples[0].key.rsplit("/", 1)[0]
        out["samples_folder"] = dg.MetadataValue.path(str(store.path(folder)))
    if document.grid is None:
        return out
    current = (f"{document.lora_version} ({partition})", picture_url(base, document.grid))
    previous = None
    if document.previous_grid and document.previous_partition:
        previous = (
            f"previous ({document.previous_partition})",
            picture_url(base, document.previous_grid),
        )
    rows = {prompt: n for n, prompt in enumerate(dict.fromkeys(r.prompt for r in document.samples))}
    links = [
        (f"row {rows[ref.prompt] + 1} seed {ref.seed}", picture_url(base, ref.key))
        for ref in document.samples
    ]
    out["sample_grid"] = grid_markdown(current, previous, links)
    return out
