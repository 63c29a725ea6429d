"""DuckDB views over every Parquet table of the storage root (``style-pipeline sql``).

One view per table, over all its daily partitions, with a ``partition`` column (the
``YYYY-MM-DD`` key, VARCHAR) taken from the file's key:

- ``<asset>/<date>.parquet`` (what the IO manager writes: ``raw_media``, ``frames``,
  ``audio``, ``transcripts``, ``chat_events``, ``aligned_pairs`` ...) -> view ``<asset>``;
- ``<asset>/<sub>/<date>.parquet`` (e.g. the dedup index) -> view ``<asset>_<sub>``;
- ``<asset>/<date>/<name>.parquet`` (files of one partition, e.g. the SFT dataset's
  splits) -> view ``<asset>_<name>``.

A view reads a glob (``<root>/raw_media/*.parquet``), so partitions written after the
view was made are part of it; partitions whose columns differ are unioned by name (a
column a day lacks is NULL there). Local roots are read by DuckDB itself; any other root
(``s3://bucket/prefix``, ``memory://``) through the store's fsspec filesystem, registered
with ``register_filesystem``: DuckDB's httpfs extension would have to be downloaded, this
needs nothing. A ``.duckdb`` file written by ``write_database`` (``style-pipeline sql
--write-db``) keeps the views: opened elsewhere (the ``duckdb`` shell, a notebook) a local
root's views work as they are; an S3 root's need the filesystem again (``connect(root,
path)`` registers it) or httpfs and credentials there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
from upath import UPath

from style_pipeline.storage.store import is_local_path, make_upath

_DATE = r"\d{4}-\d{2}-\d{2}"
_DATE_RE = re.compile(rf"^{_DATE}$")
_NAME_RE = re.compile(r"[^A-Za-z0-9_]")
# Globs (relative to the root) that find the tables: depth 2 and 3.
_GLOBS = ("*/*.parquet", "*/*/*.parquet")


@dataclass(frozen=True)
class TableView:
    """One view: its name, the glob it reads (relative to the root) and how many
    partition files it found when it was made."""

    name: str
    glob: str
    partition_regex: str  # a DuckDB regexp whose group 1 is the partition
    files: int


def _view_of(rel: str) -> tuple[str, str, str] | None:
    """(view name, relative glob, partition regexp) of one Parquet key, or None when the
    key holds no daily partition (caches, content-addressed objects)."""
    parts = rel.split("/")
    stem = parts[-1].removesuffix(".parquet")
    if len(parts) == 2 and _DATE_RE.match(stem):
        return parts[0], f"{parts[0]}/*.parquet", rf"/({_DATE})\.parquet$"
    if len(parts) == 3 and _DATE_RE.match(stem) and not _DATE_RE.match(parts[1]):
        name = f"{parts[0]}_{parts[1]}"
        return name, f"{parts[0]}/{parts[1]}/*.parquet", rf"/({_DATE})\.parquet$"
    if len(parts) == 3 and _DATE_RE.match(parts[1]) and not _DATE_RE.match(stem):
        name = f"{parts[0]}_{stem}"
        return name, f"{parts[0]}/*/{parts[2]}", rf"/({_DATE})/[^/]+\.parquet$"
    return None


def _view_name(name: str) -> str:
    cleaned = _NAME_RE.sub("_", name)
    return f"t_{cleaned}" if cleaned[:1].isdigit() else cleaned


def _relative_keys(root: UPath) -> list[str]:
    """Keys (relative to ``root``) of the Parquet files two or three levels down."""
    if is_local_path(root):
        base = Path(root.path)
        return sorted(
            p.relative_to(base).as_posix() for pattern in _GLOBS for p in base.glob(pattern)
        )
    fs, prefix = root.fs, root.path.rstrip("/")
    keys = set()
    for pattern in _GLOBS:
        for found in fs.glob(f"{prefix}/{pattern}"):
            keys.add(str(found).removeprefix(prefix).lstrip("/"))
    return sorted(keys)


def discover_views(root: UPath) -> list[TableView]:
    """Every table view the files under ``root`` call for, sorted by name."""
    found: dict[str, tuple[str, str, int]] = {}
    for rel in _relative_keys(root):
        view = _view_of(rel)
        if view is None:
            continue
        name, glob, regex = view
        name = _view_name(name)
        if name in found and found[name][0] != glob:
            continue  # the same name from another layout: the first (sorted) one wins
        count = found[name][2] if name in found else 0
        found[name] = (glob, regex, count + 1)
    return [TableView(n, g, r, c) for n, (g, r, c) in sorted(found.items())]


def _location(root: UPath) -> str:
    """The root as DuckDB reads it: an OS path locally, else the URL (``s3://b/p``)."""
    if is_local_path(root):
        return Path(root.path).resolve().as_posix()
    return str(root).rstrip("/")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def view_sql(view: TableView, location: str) -> str:
    """``CREATE OR REPLACE VIEW`` of one table over all its partitions."""
    glob = _quote_literal(f"{location}/{view.glob}")
    regex = _quote_literal(view.partition_regex)
    return (
        f"CREATE OR REPLACE VIEW {_quote_ident(view.name)} AS "
        f"SELECT * EXCLUDE (__sp_file), regexp_extract(__sp_file, {regex}, 1) AS partition "
        f"FROM read_parquet({glob}, union_by_name = true, filename = '__sp_file')"
    )


def register_root(con: duckdb.DuckDBPyConnection, root: UPath) -> None:
    """Let DuckDB read ``root`` when it is no local directory (its fsspec filesystem)."""
    if is_local_path(root):
        return
    fs = root.fs
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    if any(con.filesystem_is_registered(p) for p in protocols):
        return
    con.register_filesystem(fs)


def connect(
    storage_root: str | UPath, database: str | Path = ":memory:", **storage_options: Any
) -> tuple[duckdb.DuckDBPyConnection, list[TableView]]:
    """A DuckDB connection with one view per table of ``storage_root`` (made or replaced).

    ``database``: a ``.duckdb`` file to keep the views in (created if missing), or an
    in-memory database. Returns the connection and the views made.
    """
    root = (
        storage_root
        if isinstance(storage_root, UPath)
        else make_upath(str(storage_root), **storage_options)
    )
    con = duckdb.connect(str(database))
    try:
        register_root(con, root)
        views = discover_views(root)
        location = _location(root)
        for view in views:
            con.execute(view_sql(view, location))
    except BaseException:
        con.close()
        raise
    return con, views


def write_database(storage_root: str | UPath, path: str | Path) -> list[TableView]:
    """Write (or refresh) a ``.duckdb`` file holding the views of ``storage_root``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    con, views = connect(storage_root, target)
    con.close()
    return views


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def query(con: duckdb.DuckDBPyConnection, sql: str) -> QueryResult:
    """Run ``sql``; its column names and rows (an empty result for a statement)."""
    relation = con.sql(sql)
    if relation is None:  # a statement without a result (CREATE, SET ...)
        return QueryResult([], [])
    return QueryResult(list(relation.columns), relation.fetchall())
