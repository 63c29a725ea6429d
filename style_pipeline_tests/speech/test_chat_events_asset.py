"""The chat_events asset: materialized after raw_media, metadata and its check."""

from __future__ import annotations

import io

import dagster as dg
import polars as pl

from style_pipeline.defs.ingest.assets import raw_media
from style_pipeline.defs.resources import (
    DropFolderResource,
    SettingsResource,
    StorageResource,
    build_resources,
)
from style_pipeline.defs.speech.chat_assets import chat_events
from style_pipeline.storage.store import Store
from style_pipeline_tests.media.factories import make_video
from style_pipeline_tests.speech import chat_samples as S

DAY = "2026-11-30"


def test_chat_events_materializes_with_raw_media(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLE_PIPELINE_CHAT__USER_SALT", "test-salt")
    day = tmp_path / "drop" / DAY
    make_video(day / "talk.mp4", seconds=2.0)
    (day / "talk.chat.txt").write_text(S.TWITCH_RELATIVE)
    (day / "lost.chat.jsonl").write_text(S.GENERIC_JSONL)
    resources = {
        **build_resources(),
        "settings": SettingsResource(),
        "storage": StorageResource(root=str(tmp_path / "storage")),
        "drop_folder": DropFolderResource(path=str(tmp_path / "drop")),
    }
    result = dg.materialize([raw_media, chat_events], partition_key=DAY, resources=resources)
    assert result.success
    store = Store(str(tmp_path / "storage"))
    table = pl.read_parquet(io.BytesIO(store.read_bytes(f"chat_events/{DAY}.parquet")))
    accepted = table.filter(pl.col("status") == "accepted")
    assert accepted["ts_ms"].to_list() == [3000]  # later lines are past the 2 s clip
    meta = result.asset_materializations_for_node("chat_events")[0].metadata
    assert meta["chat_logs"].value == 2 and meta["chat_logs_rejected"].value == 1
    assert meta["accepted"].value == 1 and meta["salted"].value is True
    assert meta["rejects_by_reason"].value["video_missing"] == 1
    assert meta["dagster/row_count"].value == table.height
    (check,) = result.get_asset_check_evaluations()
    assert check.check_name == "rejects_have_reasons" and check.passed


def test_chat_disabled_gives_a_typed_empty_table(monkeypatch, tmp_path):
    from style_pipeline.contracts.chat import ChatEventRecord
    from style_pipeline.contracts.media import RawMediaRecord
    from style_pipeline.storage.tables import polars_schema

    monkeypatch.setenv("STYLE_PIPELINE_CHAT__ENABLED", "false")
    raw = pl.DataFrame(schema=polars_schema(RawMediaRecord))
    with dg.build_asset_context(partition_key=DAY) as context:
        results = list(
            chat_events(
                context=context,
                settings=SettingsResource(),
                storage=StorageResource(root=str(tmp_path / "storage")),
                raw_media=raw,
            )
        )
    output, check = results
    assert output.value.is_empty()
    assert output.value.columns == list(ChatEventRecord.model_fields)
    assert output.metadata["reason"].value == "chat.enabled is false"
    assert check.passed
