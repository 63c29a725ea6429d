"""The one daily partitions definition every asset uses (UTC, start date from config).

``end_offset=1`` makes today's partition exist while the day is still running, so files
dropped today can be materialized today.
"""

import dagster as dg

from style_pipeline.core_settings import load_core_settings

DAILY_PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=load_core_settings().start_date.isoformat(), timezone="UTC", end_offset=1
)
