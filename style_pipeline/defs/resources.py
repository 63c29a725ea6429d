"""Resources, bound once. Roots come from ``dg.EnvVar`` when the environment sets them."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

from style_pipeline.media.dropfolder import DropEntry, scan_drop
from style_pipeline.paths import resolve_local, resolve_root
from style_pipeline.settings import Settings, load_settings
from style_pipeline.storage.io_managers import JsonIOManagerFactory, ParquetIOManagerFactory
from style_pipeline.storage.store import Store


class SettingsResource(dg.ConfigurableResource):
    """The validated pipeline settings (``configs/base.yml`` or ``STYLE_PIPELINE_CONFIG``)."""

    config_path: str | None = None

    def load(self) -> Settings:
        settings = load_settings(self.config_path)
        if settings.models.allow_download:
            # models.allow_download in the YAML reaches the resolver (and, through the
            # environment, the trainer's subprocess); light: profiles imports no torch.
            from style_pipeline.models.profiles import set_download_policy

            set_download_policy(True)
        return settings


class StorageResource(dg.ConfigurableResource):
    """The storage root: a local path, ``memory://...`` or ``s3://bucket/prefix``."""

    root: str

    def store(self) -> Store:
        return Store(resolve_root(self.root))


class DropFolderResource(dg.ConfigurableResource):
    """The hot folder users drop media into."""

    path: str
    settle_seconds: float = 10.0
    hash_budget_seconds: float = 30.0
    max_file_mb: float | None = None  # larger files are not hashed (raw_media rejects them)

    def max_hash_bytes(self) -> int | None:
        return None if self.max_file_mb is None else int(self.max_file_mb * 1024 * 1024)

    def root(self) -> Path:
        return resolve_local(self.path)

    def scan(self) -> list[DropEntry]:
        return scan_drop(self.root())


def _env_or(name: str, default: str) -> str | dg.EnvVar:
    """``dg.EnvVar(name)`` when the variable is set (shown as such in the UI), else the default."""
    return dg.EnvVar(name) if os.environ.get(name) else default


def build_resources(
    settings: Settings | None = None,
) -> dict[str, dg.ConfigurableResource | dg.ConfigurableIOManagerFactory]:
    """The resource mapping; also used by tests with their own settings."""
    settings = settings or load_settings()
    storage_root = _env_or("STYLE_PIPELINE_STORAGE", settings.storage)
    return {
        "settings": SettingsResource(config_path=os.environ.get("STYLE_PIPELINE_CONFIG")),
        "storage": StorageResource(root=storage_root),
        "drop_folder": DropFolderResource(
            path=_env_or("STYLE_PIPELINE_DROP", settings.drop),
            settle_seconds=settings.sensor.settle_seconds,
            hash_budget_seconds=settings.sensor.hash_budget_seconds,
            max_file_mb=settings.ingest.max_file_mb,
        ),
        "io_manager": ParquetIOManagerFactory(root=storage_root),
        "json_io_manager": JsonIOManagerFactory(root=storage_root),
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
