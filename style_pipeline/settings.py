"""The one typed ``Settings``: ``configs/base.yml`` validated by pydantic, environment on top.

Precedence (highest first): explicit keyword overrides, environment variables, the YAML
file named by ``STYLE_PIPELINE_CONFIG`` (default ``configs/base.yml``), field defaults.
Nested keys are overridden with ``STYLE_PIPELINE_<SECTION>__<KEY>``.

Every section is a pydantic model from ``contracts/``, so this module imports no model
library: the CLI, the sensor and the partitions definition load it cheaply. Settings are
read once per run through ``SettingsResource`` (``defs/resources.py``) with ``load()``.
"""

from __future__ import annotations

import datetime as dt
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from style_pipeline.contracts.alignment import AlignmentSettings, SftSettings
from style_pipeline.contracts.captioning import CaptioningSettings
from style_pipeline.contracts.characters import CharacterSettings
from style_pipeline.contracts.chat import ChatSettings
from style_pipeline.contracts.curation import CurationSettings
from style_pipeline.contracts.ingest import FrameSettings, IngestSettings, SensorSettings
from style_pipeline.contracts.llm import LlmSettings
from style_pipeline.contracts.models import ModelsSettings
from style_pipeline.contracts.orchestration import ExecutorSettings, PictureSettings
from style_pipeline.contracts.retention import RetentionSettings
from style_pipeline.contracts.serving import ServingSettings
from style_pipeline.contracts.speech import SpeechSettings
from style_pipeline.contracts.training import TrainingSettings
from style_pipeline.paths import PROJECT_ROOT, resolve_local, resolve_root

DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "base.yml"
ENV_PREFIX = "STYLE_PIPELINE_"


class ConfigFileError(ValueError):
    """The YAML config file is unusable; the message names the file and the line."""


class Settings(BaseSettings):
    """The whole configuration of one deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    # None: the first day with data (``defs.start_date.resolve_start_date``, ADR 0005)
    start_date: dt.date | None = None
    drop: str = "data/drop"
    storage: str = "data/storage"
    ingest: IngestSettings = IngestSettings()
    frames: FrameSettings = FrameSettings()
    sensor: SensorSettings = SensorSettings()
    curation: CurationSettings = CurationSettings()
    captioning: CaptioningSettings = CaptioningSettings()
    training: TrainingSettings = TrainingSettings()
    serving: ServingSettings = ServingSettings()
    executor: ExecutorSettings = ExecutorSettings()
    pictures: PictureSettings = PictureSettings()
    retention: RetentionSettings = RetentionSettings()
    characters: CharacterSettings = CharacterSettings()
    models: ModelsSettings = ModelsSettings()
    llm: LlmSettings = LlmSettings()
    speech: SpeechSettings = SpeechSettings()
    chat: ChatSettings = ChatSettings()
    alignment: AlignmentSettings = AlignmentSettings()
    sft: SftSettings = SftSettings()

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


def read_config_file(path: str | Path | None = None) -> dict[str, Any]:
    """Parse the YAML config file into a mapping, with a clear error naming the file."""
    path = config_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f", line {where.line + 1} column {where.column + 1}" if where else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigFileError(f"{path}{line}: invalid YAML: {problem}") from exc
    if not isinstance(data, dict):
        raise ConfigFileError(f"{path}: top level must be a mapping, got {type(data).__name__}")
    return data


class _YamlSource(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], path: Path | None):
        super().__init__(settings_cls)
        self._data = read_config_file(path)

    def get_field_value(
        self, field: FieldInfo, field_name: str
    ) -> tuple[Any, str, bool]:  # pragma: no cover - __call__ is used
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


_config_path: ContextVar[Path | None] = ContextVar("style_pipeline_config_path", default=None)


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Validated settings from ``path`` (or the default file), environment and ``overrides``."""
    token = _config_path.set(config_path(path))
    try:
        return Settings(**overrides)
    finally:
        _config_path.reset(token)
