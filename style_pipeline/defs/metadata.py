"""Small helpers that turn tables into Dagster metadata (counts, markdown samples)."""

from __future__ import annotations

import dagster as dg
import polars as pl


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
