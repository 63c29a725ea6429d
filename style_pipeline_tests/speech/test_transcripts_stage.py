"""The transcripts stage on the audio stage's output: rows, cache, rejects, the parquet schema."""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pytest

from style_pipeline.contracts.speech import AudioSettings, TranscriptionSettings
from style_pipeline.speech.transcribe import Segment, Transcript, Word
from style_pipeline.stages.audio import extract_audio
from style_pipeline.stages.transcripts import transcribe_partition, transcript_schema
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.speech.speech_media import half_silent_video, speech_wav


@pytest.fixture
def audio_table(tmp_path):
    store = Store(tmp_path / "storage")
    rows = []
    for name, text in (("a.mp4", "Good question."), ("b.mp4", "Yes, tomorrow at noon.")):
        video = tmp_path / name
        half_silent_video(video, speech_wav(tmp_path / f"{name}.wav", text))
        data = video.read_bytes()
        media_id = hashlib.sha256(data).hexdigest()
        key = store.put_bytes(data, layout.raw_object_key(media_id, ".mp4"))
        rows.append({"media_id": media_id, "source_name": name, "kind": "video",
                     "status": "accepted", "object_path": key, "has_audio": True})  # fmt: skip
    table, _ = extract_audio(pl.DataFrame(rows), store, AudioSettings())
    assert table["status"].to_list() == ["ok", "ok"]
    return store, table


def test_tiny_whisper_end_to_end_gives_well_formed_rows_and_reuses_them(audio_table, tmp_path):
    store, audio = audio_table
    settings = TranscriptionSettings(
        chunk_s=4, batch_size=2, max_new_tokens=16,
        model={"profile": "tiny", "cache_dir": str(tmp_path / "models")},
    )  # fmt: skip
    table, facts = transcribe_partition(audio, store, settings)
    assert table.schema == transcript_schema()
    assert facts.transcribed == 2 and facts.rejected == 0 and facts.backend == "transformers"
    assert facts.model["whisper_profile_used"] == "tiny"
    assert set(table["media_id"]) == set(audio["media_id"])
    assert table["segment_id"].n_unique() == table.height
    assert (table["status"] == "ok").all() and (table["backend"] == "transformers").all()
    assert table["model"].str.starts_with("tiny-whisper@sha256:").all()
    for _, rows in table.group_by("media_id"):
        starts = rows["start_ms"].to_list()
        assert starts == sorted(starts)
        assert (rows["start_ms"] <= rows["end_ms"]).all()
    words = table.explode("words").unnest("words", separator=".").drop_nulls("words.word")
    assert words.height > 0
    assert (words["words.start_ms"] >= words["start_ms"]).all()
    assert (words["words.end_ms"] <= words["end_ms"]).all()
    path = tmp_path / "t.parquet"
    table.write_parquet(path)
    assert pl.read_parquet(path).equals(table)  # list-of-struct words survive parquet

    again, facts = transcribe_partition(audio, store, settings)
    assert facts.cached == 2 and facts.transcribed == 0
    assert again.equals(table)


def _fake(audios):
    out = []
    for samples in audios:
        if len(samples) and float(np.abs(samples).max()) > 10:
            raise RuntimeError("model blew up")
        seconds = len(samples) / 16000
        out.append(Transcript("en", [Segment(0.0, seconds, "hi", -0.5, 0.1,
                                             [Word(" hi", 0.0, seconds, 0.9)])]))  # fmt: skip
    return out


def test_missing_flac_and_failing_model_are_rejected_rows_the_rest_goes_on(audio_table, tmp_path):
    store, audio = audio_table
    first, second = audio.to_dicts()
    store.delete(first["audio_key"])
    # a third ok row whose FLAC makes the (fake) model raise
    loud = tmp_path / "loud.flac"
    import subprocess

    from style_pipeline.media.ffmpeg_bin import ffmpeg_exe

    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "sine=f=440:d=1", "-af", "volume=200", "-ac", "1", "-ar", "16000",
                    "-c:a", "pcm_f32le", "-f", "wav", str(loud)], check=True)  # fmt: skip
    sha = hashlib.sha256(loud.read_bytes()).hexdigest()
    store.put_file(loud, layout.audio_object_key(sha))
    third = second | {
        "media_id": "c" * 64,
        "sha256": sha,
        "audio_key": layout.audio_object_key(sha),
    }
    table, facts = transcribe_partition(
        pl.DataFrame([first, second, third], schema=audio.schema), store,
        TranscriptionSettings(batch_size=8), transcriber=("transformers", "fake", _fake, {}),
    )  # fmt: skip
    by_media = {r["media_id"]: r for r in table.to_dicts()}
    assert by_media[first["media_id"]]["reason"] == "audio_unreadable"
    assert by_media[second["media_id"]]["status"] == "ok"
    assert by_media["c" * 64]["reason"] == "transcription_failed"
    assert "model blew up" in by_media["c" * 64]["detail"]
    assert facts.rejects_by_reason == {"audio_unreadable": 1, "transcription_failed": 1}


def test_no_ok_audio_is_an_empty_typed_table(tmp_path):
    empty = pl.DataFrame({"status": ["rejected"]})
    table, facts = transcribe_partition(empty, Store(tmp_path), TranscriptionSettings())
    assert table.is_empty() and table.schema == transcript_schema() and facts.audios == 0


@pytest.mark.parametrize(
    ("durations_s", "expected"),
    [
        ([1, 1, 1], [[0, 1, 2]]),  # short audios share one batch of windows
        ([50, 50, 50], [[0], [1], [2]]),  # 2 x 30 s windows budget: one each
        ([10, 300, 10, 10], [[0], [1], [2, 3]]),  # a long audio alone
        ([0, 0], [[0, 1]]),
    ],
)
def test_audio_groups_bound_the_samples_in_memory(durations_s, expected):
    from style_pipeline.stages.transcripts import audio_groups

    pending = [(i, {"duration_ms": d * 1000}, "k") for i, d in enumerate(durations_s)]
    groups = audio_groups(pending, TranscriptionSettings(batch_size=2, chunk_s=30))
    assert [[i for i, _, _ in g] for g in groups] == expected
