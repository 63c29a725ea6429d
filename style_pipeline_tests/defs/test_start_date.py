"""The first daily partition: explicit config wins, else the first day with data (ADR 0005)."""

from __future__ import annotations

import datetime as dt

from style_pipeline.defs.start_date import FALLBACK_DAYS, resolve_start_date
from style_pipeline.settings import load_settings
from style_pipeline.storage.store import Store

TODAY = dt.date(2026, 11, 30)


def auto(tmp_path):
    return load_settings(start_date=None, drop=str(tmp_path / "drop"), storage=str(tmp_path / "st"))


def test_no_data_falls_back_to_a_month_ago(tmp_path):
    assert resolve_start_date(auto(tmp_path), TODAY) == TODAY - dt.timedelta(days=FALLBACK_DAYS)


def test_the_earliest_of_drop_folder_and_stored_partitions(tmp_path):
    settings = auto(tmp_path)
    (settings.drop_path() / "2026-11-20").mkdir(parents=True)
    (settings.drop_path() / "2026-11-20" / "a.jpg").write_bytes(b"x")
    assert resolve_start_date(settings, TODAY) == dt.date(2026, 11, 20)
    Store(settings.storage_root()).put_bytes(b"p", "raw_media/2026-11-02.parquet")
    Store(settings.storage_root()).put_bytes(b"o", "raw_media/objects/ab/x.jpg")
    # a day already materialized never falls out of range
    assert resolve_start_date(settings, TODAY) == dt.date(2026, 11, 2)


def test_an_explicit_start_date_wins(tmp_path):
    settings = load_settings(start_date="2025-01-01", drop=str(tmp_path / "drop"))
    assert resolve_start_date(settings, TODAY) == dt.date(2025, 1, 1)
