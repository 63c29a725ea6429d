"""Light core of the typed settings (no model libraries imported); see ``settings``.

Precedence (highest first): environment variables, the YAML file named by
``STYLE_PIPELINE_CONFIG`` (default ``configs/base.yml``), field defaults.
Nested keys are overridden with ``STYLE_PIPELINE_<SECTION>__<KEY>``.
"""

from __future__ import annotations

import datetime as dt
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from style_pipeline.paths import PROJECT_ROOT, resolve_local, resolve_root

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "base.yml"
ENV_PREFIX = "STYLE_PIPELINE_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestSettings(_Section):
    max_file_mb: float = Field(4096, gt=0)
    max_video_seconds: float = Field(3600, gt=0)
    max_image_pixels: int = Field(89_478_485, gt=0)
    max_video_pixels: int = Field(7680 * 4608, gt=0)
    quarantine_max_mb: float = Field(256, ge=0)


class FrameSettings(_Section):
    mode: Literal["scene", "keyframes", "interval"] = "scene"
    scene_threshold: float = Field(0.30, gt=0, lt=1)
    min_scene_gap_s: float = Field(0.5, ge=0)
    interval_s: float = Field(2.0, gt=0)
    max_frames_per_video: int = Field(120, gt=0)
    analysis_width: int = Field(320, ge=32)
    include_first_frame: bool = True
    still_max_edge: int = Field(2048, ge=64)
    jpeg_quality: int = Field(95, ge=50, le=100)


class SensorSettings(_Section):
    settle_seconds: float = Field(10, ge=0)
    minimum_interval_seconds: int = Field(30, ge=1)
    hash_budget_seconds: float = Field(30, gt=0)


class CoreSettings(BaseSettings):
    """The light part of the configuration: roots, partitions, ingest, frames, sensor.

    Importable without any model library (the CLI's ``drop`` and the media code use it);
    sections it does not know are ignored here and validated by ``Settings``.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", frozen=True
    )

    start_date: dt.date = dt.date(2025, 1, 1)
    drop: str = "data/drop"
    storage: str = "data/storage"
    ingest: IngestSettings = IngestSettings()
    frames: FrameSettings = FrameSettings()
    sensor: SensorSettings = SensorSettings()

    @field_validator("drop", "storage")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Sources are deep-merged, earlier wins: explicit kwargs, environment, YAML file.
        return (init_settings, env_settings, _YamlSource(settings_cls, _config_path.get()))

    def drop_path(self) -> Path:
        """The hot folder as an absolute local path (relative paths hang off the project root)."""
        return resolve_local(self.drop)

    def storage_root(self) -> str:
        """The storage root: absolute local path, or a URL such as ``s3://bucket/prefix``."""
        return resolve_root(self.storage)


def config_path(path: str | Path | None = None) -> Path:
    """The YAML config: ``path``, else ``STYLE_PIPELINE_CONFIG``, else ``configs/base.yml``."""
    return Path(path or os.environ.get(f"{ENV_PREFIX}CONFIG") or DEFAULT_CONFIG)


def read_config_file(path: str | Path | None = None) -> dict:
    """Parse the YAML config file into a mapping, with a clear error when it is unusable."""
    path = config_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


class _YamlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None):
        super().__init__(settings_cls)
        self._data = read_config_file(path)

    def get_field_value(self, field, field_name):  # pragma: no cover - __call__ is used
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict:
        return dict(self._data)


_config_path: ContextVar[Path | None] = ContextVar("style_pipeline_config_path", default=None)
_S = TypeVar("_S", bound=CoreSettings)


def load_from(cls: type[_S], path: str | Path | None = None, **overrides) -> _S:
    """``cls`` validated from ``path`` (or the default file), environment and ``overrides``."""
    token = _config_path.set(config_path(path))
    try:
        return cls(**overrides)
    finally:
        _config_path.reset(token)


def load_core_settings(path: str | Path | None = None, **overrides) -> CoreSettings:
    """Validated light settings (no model library imported)."""
    return load_from(CoreSettings, path, **overrides)
