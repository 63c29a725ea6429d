"""Typed settings: ``configs/base.yml`` validated by pydantic, overridden by environment.

Precedence (highest first): environment variables, the YAML file named by
``STYLE_PIPELINE_CONFIG`` (default ``configs/base.yml``), field defaults.
Nested keys are overridden with ``STYLE_PIPELINE_<SECTION>__<KEY>``.

``CoreSettings`` (roots, partitions, ingest, frames, sensor) lives in ``core_settings``
and imports no model library; ``Settings`` adds the curation, captioning and training
sections, whose config models come from modules that import torch and friends.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from style_pipeline.captioning.steps import CaptioningSettings
from style_pipeline.core_settings import (  # noqa: F401  (re-exported)
    DEFAULT_CONFIG,
    ENV_PREFIX,
    CoreSettings,
    FrameSettings,
    IngestSettings,
    SensorSettings,
    _Section,
    config_path,
    load_core_settings,
    load_from,
    read_config_file,
)
from style_pipeline.curation.clustering import ClusterConfig
from style_pipeline.curation.dedup import DedupConfig
from style_pipeline.curation.embeddings import EmbeddingConfig
from style_pipeline.curation.quality import QualityConfig
from style_pipeline.curation.selection import SelectionConfig
from style_pipeline.models.config import ModelConfig
from style_pipeline.paths import PROJECT_ROOT, resolve_local, resolve_root  # noqa: F401
from style_pipeline.training.steps import TrainingSettings


class CurationSettings(_Section):
    """Thresholds and models of the curation group (each sub-model documents its fields)."""

    dedup: DedupConfig = DedupConfig()
    quality: QualityConfig = QualityConfig()
    clip: ModelConfig = ModelConfig()
    embeddings: EmbeddingConfig = EmbeddingConfig()
    clusters: ClusterConfig = ClusterConfig()
    selection: SelectionConfig = SelectionConfig()
    ontology_path: str = "data/ontology.json"
    overrides_root: str = Field(
        "data/overrides", description="holds <date>.yml with lock_in / exclude frame ids"
    )
    min_curated_per_day: int = Field(4, ge=0, description="blocking check before training")
    max_duplicate_rate: float = Field(0.9, ge=0, le=1, description="warning check")
    min_pass_rate: float = Field(0.1, ge=0, le=1, description="warning check")


class Settings(CoreSettings):
    """The whole configuration of one deployment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    curation: CurationSettings = CurationSettings()
    captioning: CaptioningSettings = CaptioningSettings()
    training: TrainingSettings = TrainingSettings()


def load_settings(path: str | Path | None = None, **overrides) -> Settings:
    """Validated settings from ``path`` (or the default file), environment and ``overrides``."""
    return load_from(Settings, path, **overrides)
