"""IO managers: one ``UPathIOManager`` subclass per format; local, memory:// and s3:// alike.

Layout: ``<root>/<asset>/<partition>.parquet`` (tables) and ``<root>/<asset>/<partition>.json``.
No pickle anywhere: tables are Parquet, documents are JSON. Writes go through
``atomic_write_bytes`` (local files follow the umask); S3 errors for a missing bucket or
refused credentials name the bucket, the root and the credential source.
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
from style_pipeline.storage.s3_errors import s3_errors_explained
from style_pipeline.storage.store import atomic_write_bytes, is_local_path, make_upath


class _RootedIOManager(dg.UPathIOManager):
    """A ``UPathIOManager`` that remembers its storage root to name it in errors."""

    def __init__(self, base_path: UPath) -> None:
        super().__init__(base_path=base_path)
        self.root = base_path

    def make_directory(self, path: UPath) -> None:
        # On object stores there are no folders, and s3fs's mkdir on a missing bucket
        # *creates* it: a typo in the root would silently write into a new bucket.
        if is_local_path(path):
            path.mkdir(parents=True, exist_ok=True)

    def _read(self, path: UPath) -> bytes:
        with s3_errors_explained(self.root, path):
            return path.read_bytes()

    def get_missing_partition_log_message(self, partition_key: str) -> str:
        # Dagster logs this at WARNING for each day of a window input (training_dataset's
        # captions) that was never materialized; say that it is expected and what happens.
        return (
            f"no stored {partition_key} for this window input (never materialized): "
            "that day is left out, as allow_missing_partitions asks"
        )


class ParquetIOManager(_RootedIOManager):
    """polars DataFrames as zstd Parquet files."""

    extension: str = ".parquet"

    def dump_to_path(self, context: dg.OutputContext, obj: pl.DataFrame, path: UPath) -> None:
        if not isinstance(obj, pl.DataFrame):
            raise TypeError(f"ParquetIOManager stores polars DataFrames, got {type(obj).__name__}")
        buffer = io.BytesIO()
        obj.write_parquet(buffer, compression="zstd", statistics=True)
        atomic_write_bytes(path, buffer.getvalue(), root=self.root)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> pl.DataFrame:
        return pl.read_parquet(io.BytesIO(self._read(path)))


class JsonIOManager(_RootedIOManager):
    """JSON documents (dicts, lists, pydantic models) with sorted keys."""

    extension: str = ".json"

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        if isinstance(obj, BaseModel):
            obj = obj.model_dump(mode="json")
        data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode() + b"\n"
        atomic_write_bytes(path, data, root=self.root)

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        return json.loads(self._read(path))


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
