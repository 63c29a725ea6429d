"""``style-pipeline sql``: SQL over every table of the storage root (DuckDB views).

``style-pipeline sql "select partition, count(*) from raw_media group by all"`` prints a
table (``--csv`` / ``--json`` for machines); ``--write-db views.duckdb`` writes a DuckDB
file with the views; ``--tables`` lists them. DuckDB is imported when the command runs.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

console = Console()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _print_rich(columns: list[str], rows: list[tuple[Any, ...]], limit: int) -> None:
    table = Table(show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows[:limit]:
        table.add_row(*("NULL" if v is None else str(v) for v in row))
    console.print(table)
    more = f" (first {limit} shown; --csv or --json print all)" if len(rows) > limit else ""
    console.print(f"{len(rows)} row(s){more}")


def sql(
    statement: str = typer.Argument(None, help='the SQL to run, e.g. "select * from audio"'),
    as_csv: bool = typer.Option(False, "--csv", help="print CSV (all rows)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON lines (all rows)"),
    write_db: Path = typer.Option(
        None, "--write-db", dir_okay=False, help="write a .duckdb file with the views"
    ),
    tables: bool = typer.Option(False, "--tables", help="list the views and their files"),
    limit: int = typer.Option(50, help="rows shown in the table view"),
    root: str = typer.Option(None, help="storage root (default: the configured one)"),
) -> None:
    """Query every Parquet table of the storage root with DuckDB (local or S3)."""
    from style_pipeline.sql import connect, query, write_database

    if as_csv and as_json:
        raise typer.BadParameter("--csv and --json exclude each other")
    if statement is None and write_db is None and not tables:
        raise typer.BadParameter("give a SQL statement, --tables or --write-db")
    if root is None:
        from style_pipeline.settings import load_settings

        root = load_settings().storage_root()
    if write_db is not None:
        made = write_database(root, write_db)
        console.print(f"wrote {len(made)} view(s) over {root} to {write_db}", highlight=False)
    con, views = connect(root)
    try:
        if tables:
            listing = Table(title=f"views over {root}")
            for column in ("view", "files", "reads"):
                listing.add_column(column)
            for view in views:
                listing.add_row(view.name, str(view.files), view.glob)
            console.print(listing)
        if statement is None:
            return
        import duckdb

        try:
            result = query(con, statement)
        except duckdb.Error as err:
            console.print(f"[red]{type(err).__name__}: {err}", highlight=False)
            names = ", ".join(v.name for v in views) or "none (nothing materialized yet?)"
            console.print(f"views: {names}", highlight=False)
            raise typer.Exit(1) from None
    finally:
        con.close()
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    elif as_json:
        for row in result.rows:
            record = dict(zip(result.columns, row, strict=True))
            sys.stdout.write(json.dumps(_jsonable(record), ensure_ascii=False) + "\n")
    elif result.columns:
        _print_rich(result.columns, result.rows, limit)
