"""The first daily partition: ``start_date`` from config, else the first day with data.

Evaluated once, when the definitions load (ADR 0005):

1. an explicit ``start_date`` in the config (or ``STYLE_PIPELINE_START_DATE``) wins;
2. else the earliest of the first arrival date in the drop folder (the date ``raw_media``
   files a drop under: its dated folder, else its mtime/ctime) and the first ``raw_media``
   partition in storage (``raw_media/<date>.parquet``), so a day already materialized never
   falls out of range;
3. else (no data anywhere) today (UTC) minus ``FALLBACK_DAYS``.

Both looks are cheap: a stat per drop-folder file and one listing of ``raw_media/``. A
failure of either (an unreachable bucket) is skipped, never raised: definitions must load.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from style_pipeline.media.dropfolder import scan_drop
from style_pipeline.settings import Settings
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

FALLBACK_DAYS = 30
log = logging.getLogger(__name__)


def first_drop_date(drop: Path) -> dt.date | None:
    """The earliest arrival date of a file in the drop folder (None: empty or unreadable)."""
    try:
        return min((e.arrival_date for e in scan_drop(drop)), default=None)
    except OSError as exc:
        log.warning("start date: cannot scan the drop folder %s (%s)", drop, exc)
        return None


def first_stored_partition(storage_root: str) -> dt.date | None:
    """The earliest ``raw_media`` partition in storage (None: none, or storage unreadable)."""
    try:
        keys = Store(storage_root).list(layout.RAW_MEDIA)
    except Exception as exc:  # noqa: BLE001 - any storage failure: fall back, never fail loading
        log.warning("start date: cannot list %s/%s (%s)", storage_root, layout.RAW_MEDIA, exc)
        return None
    dates = [layout.partition_of(key, layout.RAW_MEDIA) for key in keys]
    return min((dt.date.fromisoformat(d) for d in dates if d), default=None)


def resolve_start_date(settings: Settings, today: dt.date | None = None) -> dt.date:
    """The first daily partition under the rule of the module docstring."""
    if settings.start_date is not None:
        return settings.start_date
    found = [
        d
        for d in (
            first_drop_date(settings.drop_path()),
            first_stored_partition(settings.storage_root()),
        )
        if d is not None
    ]
    if found:
        return min(found)
    today = today or dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=FALLBACK_DAYS)
