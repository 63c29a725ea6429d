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
