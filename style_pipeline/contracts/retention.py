"""Retention contracts: the ``retention:`` config section (how long stored data is kept).

The ``retention_job`` (daily, ``schedule``) and ``style-pipeline retention`` delete what is
past these limits; ``stages/retention.py`` says exactly which keys each limit covers and
what is always kept (the live LoRA, its training data, the newest versions).
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from style_pipeline.contracts.sections import Section

GIB = 1024**3
# Five cron fields (minute hour day-of-month month day-of-week); Dagster checks the rest.
_CRON = re.compile(r"^\s*\S+(\s+\S+){4}\s*$")


class RetentionSettings(Section):
    """What the daily retention run deletes. A day older than N days is one whose date
    is before ``today - N``: ``today - N`` itself is still kept."""

    enabled: bool = Field(
        True, description="false: the schedule's ticks skip (the CLI and manual runs still work)"
    )
    dry_run: bool = Field(
        False, description="scheduled runs only plan and log what they would delete"
    )
    schedule: str = Field(
        "30 3 * * *", description="cron (UTC) of retention_schedule: after the nightly run"
    )
    raw_media_days: int = Field(
        90,
        ge=1,
        description="raw_media tables, quarantined files, and originals (with their ledger "
        "entries) whose newest acceptance is older",
    )
    frames_days: int = Field(
        90,
        ge=1,
        description="frames tables and frame images, curated_frames tables and the dedup "
        "index of a day",
    )
    training_dataset_days: int = Field(
        90, ge=1, description="training_dataset folders and documents of a day"
    )
    metrics_days: int = Field(
        30, ge=1, description="metrics documents and their sample images of a day"
    )
    reports_days: int = Field(
        30, ge=1, description="pictures under reports/ (strips, grids, loss curves) of a day"
    )
    lora_keep_versions: int = Field(
        3, ge=1, description="newest published LoRA versions kept (the live one always is)"
    )
    lora_incomplete_days: int = Field(
        2,
        ge=1,
        description="LoRA version folders without metadata.json (a publish that died) older "
        "than this are deleted",
    )
    cache_max_age_days: int = Field(
        90, ge=1, description="cache entries written longer ago are deleted"
    )
    cache_max_bytes: int | None = Field(
        50 * GIB,
        ge=0,
        description="then the oldest entries go until all caches together fit (None: no limit)",
    )

    @field_validator("schedule")
    @classmethod
    def _five_cron_fields(cls, value: str) -> str:
        if not _CRON.match(value):
            raise ValueError(f"not a five-field cron expression: {value!r}")
        return value.strip()
