"""The one daily partitions definition every asset uses (UTC, start date from config).

``end_offset=1`` makes today's partition exist while the day is still running, so files
dropped today can be materialized today.
"""

from typing import TypedDict

import dagster as dg

from style_pipeline.defs.start_date import resolve_start_date
from style_pipeline.settings import load_settings

# Input metadata for a day that may hold no partition of its upstream (a quiet day with no
# drops, or the days of a window never materialized): the IO manager passes None, or leaves
# the day out of a window's dict, instead of failing the step.
MAY_BE_MISSING = {"allow_missing_partitions": True}

DAILY_PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=resolve_start_date(load_settings()).isoformat(), timezone="UTC", end_offset=1
)


class AssetGroupOptions(TypedDict):
    """The ``@dg.asset`` keyword arguments every asset of a group shares."""

    partitions_def: dg.PartitionsDefinition[str]
    group_name: str
    code_version: str
    owners: list[str]
    tags: dict[str, str]
