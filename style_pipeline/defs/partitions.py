"""The one daily partitions definition every asset uses (UTC, start date from config).

``end_offset=1`` makes today's partition exist while the day is still running, so files
dropped today can be materialized today.
"""

import dagster as dg

from style_pipeline.settings import load_settings

DAILY_PARTITIONS = dg.DailyPartitionsDefinition(
    start_date=load_settings().start_date.isoformat(), timezone="UTC", end_offset=1
)
