"""The audio side: ffmpeg's summaries parsed, a real speech clip to FLAC, the audio stage."""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl
import pytest

from style_pipeline.contracts.speech import AudioSettings
from style_pipeline.speech.audio import (
    AudioRejected,
    analyse_flac,
    extract_flac,
    parse_ebur128,
    read_samples,
    silence_seconds,
)
from style_pipeline.stages.audio import extract_audio
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline_tests.speech.speech_media import (
    half_silent_video,
    speech_wav,
    video_without_audio,
)

EBUR128_SUMMARY = """[Parsed_ebur128_0 @ 0x1] Summary:

  Integrated loudness:
    I:         -20.8 LUFS
    Threshold: -31.4 LUFS

  Loudness range:
    LRA:         8.0 LU
    Threshold:   -41.5 LUFS

  True peak:
    Peak:       -2.3 dBFS
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (EBUR128_SUMMARY, (-20.8, 8.0, -2.3)),
        (EBUR128_SUMMARY.replace("-20.8 LUFS", "-70.0 LUFS"), (None, 8.0, -2.3)),  # silence
        (EBUR128_SUMMARY.replace("-2.3 dBFS", "-inf dBFS"), (-20.8, 8.0, None)),
        ("no summary at all", (None, None, None)),
    ],
)
def test_parse_ebur128(text, expected):
    assert parse_ebur128(text) == expected


@pytest.mark.parametrize(
    ("lines", "duration", "expected"),
    [
        ("", 5.0, 0.0),
        ("silence_start: 1\nsilence_end: 2.5 | silence_duration: 1.5", 5.0, 1.5),
        ("silence_start: 0\nsilence_end: 1 | x\nsilence_start: 4", 5.0, 2.0),  # open at the end
        ("silence_start: -0.01\nsilence_end: 9 | x", 5.0, 5.0),  # clamped to the audio
    ],
)
def test_silence_seconds(lines, duration, expected):
    assert silence_seconds(lines, duration) == pytest.approx(expected)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("speech_media")
    wav = speech_wav(root / "speech.wav")
    half = root / "half.mp4"
    half_silent_video(half, wav)
    return {"wav": wav, "half": half, "silent": video_without_audio(root / "silent.mp4")}


def test_speech_clip_to_flac_with_sane_loudness_and_half_silence(media, tmp_path):
    settings = AudioSettings()
    flac = extract_flac(media["half"], tmp_path / "a.flac", settings)
    assert flac.read_bytes()[:4] == b"fLaC"
    analysis = analyse_flac(flac, settings)
    assert analysis.duration_ms == pytest.approx(2 * 1000 * _wav_s(media["wav"]), abs=60)
    assert -35.0 < analysis.integrated_lufs < -10.0  # espeak-ng speaks at a normal level
    assert analysis.true_peak_dbtp is not None and -20.0 < analysis.true_peak_dbtp <= 1.0
    assert analysis.loudness_range_lu is not None and analysis.loudness_range_lu >= 0
    assert 0.45 <= analysis.silence_ratio <= 0.7  # half padding + espeak's own pauses
    samples = read_samples(flac)
    assert samples.dtype.name == "float32"
    assert len(samples) == pytest.approx(analysis.duration_ms * 16, abs=16)
    # deterministic bytes: the same video gives the same content address
    again = extract_flac(media["half"], tmp_path / "b.flac", settings)
    assert again.read_bytes() == flac.read_bytes()


def _wav_s(path: Path) -> float:
    from style_pipeline_tests.speech.speech_media import wav_seconds

    return wav_seconds(path)


def test_video_without_audio_is_no_audio(media, tmp_path):
    with pytest.raises(AudioRejected) as err:
        extract_flac(media["silent"], tmp_path / "x.flac", AudioSettings())
    assert err.value.reason.value == "no_audio"


def _row(store: Store, path: Path | None, name: str, **extra) -> dict:
    data = path.read_bytes() if path else name.encode()
    media_id = hashlib.sha256(data).hexdigest()
    key = layout.raw_object_key(media_id, ".mp4")
    store.put_bytes(data, key)
    row = {"media_id": media_id, "source_name": name, "kind": "video", "status": "accepted",
           "object_path": key, "has_audio": True}  # fmt: skip
    return row | extra


def test_audio_stage_lists_every_video_with_status_and_reuses_its_cache(media, tmp_path):
    store = Store(tmp_path / "storage")
    rows = [
        _row(store, media["half"], "day/half.mp4"),
        _row(store, media["silent"], "day/silent.mp4", has_audio=False),
        _row(store, media["silent"], "day/silent again.mp4", has_audio=None),  # same content
        _row(store, None, "day/garbage.mp4"),
        _row(store, None, "day/photo.jpg", kind="image"),
        _row(store, None, "day/refused.mp4", status="rejected"),
    ]
    raw_media = pl.DataFrame(rows)
    table, facts = extract_audio(raw_media, store, AudioSettings())
    by_name = {r["source_name"]: r for r in table.to_dicts()}
    assert set(by_name) == {"day/half.mp4", "day/silent.mp4", "day/garbage.mp4"}
    ok = by_name["day/half.mp4"]
    assert ok["status"] == "ok" and ok["reason"] is None
    assert ok["sample_rate"] == 16000 and ok["channels"] == 1
    assert ok["audio_key"] == layout.audio_object_key(ok["sha256"])
    assert hashlib.sha256(store.read_bytes(ok["audio_key"])).hexdigest() == ok["sha256"]
    assert 0.45 <= ok["silence_ratio"] <= 0.7
    assert by_name["day/silent.mp4"]["reason"] == "no_audio"
    assert by_name["day/garbage.mp4"]["reason"] == "decode_failed"
    assert facts.rejects_by_reason == {"no_audio": 1, "decode_failed": 1}
    assert facts.extracted == 1 and facts.cached == 0

    again, facts = extract_audio(raw_media, store, AudioSettings())
    assert facts.cached == 2 and facts.extracted == 0  # the ok row and the decode failure
    assert again.equals(table)
    # another config derives again
    _, facts = extract_audio(raw_media, store, AudioSettings(silence_noise_db=-50))
    assert facts.extracted == 1


def test_probe_without_audio_flag_still_gets_no_audio_from_ffmpeg(media, tmp_path):
    store = Store(tmp_path / "storage")
    table, _ = extract_audio(
        pl.DataFrame([_row(store, media["silent"], "day/s.mp4", has_audio=None)]),
        store, AudioSettings(),
    )  # fmt: skip
    assert table["reason"].to_list() == ["no_audio"]
