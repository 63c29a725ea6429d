"""audio and transcripts materialized from a drop folder: exact keys, checks, reject rows."""

from __future__ import annotations

import polars as pl
import pytest

from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.conftest import materialize_day
from style_pipeline_tests.speech.speech_media import (
    half_silent_video,
    speech_wav,
    video_without_audio,
)

DAY = "2026-11-21"


@pytest.fixture
def tiny_whisper(monkeypatch, tmp_path):
    for key, value in {
        "MODEL__PROFILE": "tiny",
        "MODEL__CACHE_DIR": str(tmp_path / "models"),
        "CHUNK_S": "4",
        "MAX_NEW_TOKENS": "12",
    }.items():
        monkeypatch.setenv(f"STYLE_PIPELINE_SPEECH__TRANSCRIPTION__{key}", value)


def test_speech_assets_materialize_from_the_drop_folder(tmp_path, tiny_whisper, instance):
    drop = tmp_path / "drop" / DAY
    half_silent_video(drop / "talk.mp4", speech_wav(tmp_path / "s.wav"))
    video_without_audio(drop / "mute.mp4")

    result = materialize_day(DAY, "key:raw_media or key:audio or key:transcripts",
                             instance=instance)  # fmt: skip
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"audio_rows_complete": True, "segments_ordered": True}

    store = Store(tmp_path / "storage")
    audio = pl.read_parquet(store.local_path(layout.table_key("audio", DAY)))
    by_name = {r["source_name"].rsplit("/", 1)[-1]: r for r in audio.to_dicts()}
    assert by_name["mute.mp4"]["status"] == "rejected"
    assert by_name["mute.mp4"]["reason"] == "no_audio"
    talk = by_name["talk.mp4"]
    assert talk["status"] == "ok" and store.exists(layout.audio_object_key(talk["sha256"]))
    assert 0.45 <= talk["silence_ratio"] <= 0.7

    transcripts = pl.read_parquet(store.local_path(layout.table_key("transcripts", DAY)))
    assert transcripts.height > 0
    assert set(transcripts["media_id"]) == {talk["media_id"]}
    assert (transcripts["status"] == "ok").all()
    meta = result.asset_materializations_for_node("transcripts")[0].metadata
    assert meta["whisper_profile_used"].value == "tiny"
    assert meta["segments"].value == transcripts.height
