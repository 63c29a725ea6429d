"""IO managers: one ``UPathIOManager`` subclass per format; local, memory:// and s3:// alike.

Layout: ``<root>/<asset>/<partition>.parquet`` (tables) and ``<root>/<asset>/<partition>.json``.
No pickle anywhere: tables are Parquet, documents are JSON.
"""

from __future__ import annotations

import io
import json
from typing import Any

import dagster as dg
import polars as pl
from pydantic import BaseModel
from upath import UPath

from style_pipeline.paths import resolve_root
from style_pipeline.storage.store import atomic_write_bytes, make_upath


class ParquetIOManager(dg.UPathIOManager):
    """polars DataFrames as zstd Parquet files."""

    extension: str = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"ParquetIOManager stores polars DataFrames, got {type(obj).__name__}")
        buffer = io.BytesIO()
        obj.write_parquet(buffer, compression="zstd", statistics=True)
        atomic_write_bytes(path, buffer.getvalue())

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(path.read_bytes()))


class JsonIOManager(dg.UPathIOManager):
    """JSON documents (dicts, lists, pydantic models) with sorted keys."""

    extension: str = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, BaseModel):
            obj = obj.model_dump(mode="json")
        data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode() + b"\n"
        atomic_write_bytes(path, data)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        return json.loads(path.read_bytes())


class ParquetIOManagerFactory(dg.ConfigurableIOManagerFactory[ParquetIOManager]):
    """Configurable entry point for :class:`ParquetIOManager` (root: path or URL)."""

    root: str

    def create_io_manager(self, context: dg.InitResourceContext) -> ParquetIOManager:
        return ParquetIOManager(base_path=make_upath(resolve_root(self.root)))


class JsonIOManagerFactory(dg.ConfigurableIOManagerFactory[JsonIOManager]):
    """Configurable entry point for :class:`JsonIOManager` (root: path or URL)."""

    root: str

    def create_io_manager(self, context: dg.InitResourceContext) -> JsonIOManager:
        return JsonIOManager(base_path=make_upath(resolve_root(self.root)))
