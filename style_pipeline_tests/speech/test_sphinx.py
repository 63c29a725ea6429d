"""The pocketsphinx backend on real espeak-ng speech: words heard, timings, pauses, language."""

from __future__ import annotations

import re
import subprocess

import numpy as np
import polars as pl
import pytest

from style_pipeline.contracts.speech import TranscriptionSettings
from style_pipeline.media.ffmpeg_bin import ffmpeg_exe
from style_pipeline.speech import sphinx
from style_pipeline.speech.sphinx import LanguageUnsupported, SphinxTranscriber
from style_pipeline.stages import transcripts
from style_pipeline.stages.transcripts import resolve_backend, transcribe_partition
from style_pipeline_tests.speech.speech_media import speech_wav

pytest.importorskip("pocketsphinx")
VOICE = "en-us+klatt3"  # the demo's voice
FIRST = "Good question. I think the answer is yes, we will stream again tomorrow."
SECOND = "The next stream is on Friday at noon."
PAUSE_S = 2.0


def _samples(wav) -> np.ndarray:
    pcm = subprocess.run(
        [ffmpeg_exe(), "-loglevel", "error", "-i", str(wav), "-ar", "16000", "-ac", "1",
         "-f", "s16le", "pipe:1"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(pcm, "<i2").astype(np.float32) / 32768


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def recall(reference: str, heard: str) -> float:
    """Share of the reference's words heard (each heard word counts once)."""
    pool = _words(heard)
    found = 0
    for word in _words(reference):
        if word in pool:
            pool.remove(word)
            found += 1
    return found / len(_words(reference))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """0.5 s silence, FIRST, PAUSE_S silence, SECOND, 0.5 s silence; and where SECOND starts."""
    tmp = tmp_path_factory.mktemp("sphinx")
    first = _samples(speech_wav(tmp / "first.wav", FIRST, VOICE))
    second = _samples(speech_wav(tmp / "second.wav", SECOND, VOICE))
    quiet = np.zeros(int(0.5 * 16000), np.float32)
    pause = np.zeros(int(PAUSE_S * 16000), np.float32)
    audio = np.concatenate([quiet, first, pause, second, quiet])
    return audio, (len(quiet) + len(first)) / 16000, (len(quiet) + len(first) + len(pause)) / 16000


@pytest.fixture(scope="module")
def transcript(clip):
    (result,) = SphinxTranscriber(TranscriptionSettings(backend="pocketsphinx"))([clip[0]])
    return result


def test_pocketsphinx_hears_most_words_of_real_speech(transcript, clip):
    _, pause_start, pause_end = clip
    before = " ".join(s.text for s in transcript.segments if s.end_s <= pause_start + 0.3)
    after = " ".join(s.text for s in transcript.segments if s.start_s >= pause_end - 0.3)
    # measured with pocketsphinx 5.1.1 and espeak-ng 1.51: 0.69 and 0.62
    assert recall(FIRST, before) >= 0.5, before
    assert recall(SECOND, after) >= 0.5, after
    assert transcript.language == "en"


def test_segments_are_split_at_the_pause_and_timed_inside_the_clip(transcript, clip):
    audio, pause_start, pause_end = clip
    duration = len(audio) / 16000
    segments = transcript.segments
    assert len(segments) >= 2
    # no segment spans the pause: one ends before it, the next starts after it
    assert not any(s.start_s < pause_start - 0.3 and s.end_s > pause_end + 0.3 for s in segments)
    assert any(s.end_s <= pause_start + 0.3 for s in segments)
    assert any(s.start_s >= pause_end - 0.3 for s in segments)
    floor = 0.0
    for segment in segments:
        assert floor <= segment.start_s <= segment.end_s <= duration
        assert segment.avg_logprob is not None and segment.avg_logprob <= 0
        assert segment.no_speech_prob is not None and 0 <= segment.no_speech_prob <= 1
        assert segment.words and segment.text == " ".join(w.word.strip() for w in segment.words)
        word_floor = segment.start_s
        for word in segment.words:
            assert word_floor <= word.start_s <= word.end_s <= segment.end_s
            assert 0 < word.probability <= 1 and "(" not in word.word
            word_floor = word.start_s
        floor = segment.end_s


def test_silence_gives_no_segments():
    (result,) = SphinxTranscriber(TranscriptionSettings(backend="pocketsphinx"))(
        [np.zeros(16000, np.float32)]
    )
    assert result.segments == [] and result.language == "en"


def test_another_language_is_refused_and_becomes_a_reject_row(tmp_path):
    settings = TranscriptionSettings(backend="pocketsphinx", language="de")
    with pytest.raises(LanguageUnsupported, match="English only"):
        SphinxTranscriber(settings)([np.zeros(1600, np.float32)])
    from style_pipeline.storage.store import Store

    store = Store(tmp_path)
    flac = tmp_path / "a.flac"
    subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                    "anullsrc=r=16000:cl=mono", "-t", "1", str(flac)], check=True)  # fmt: skip
    key = store.put_bytes(flac.read_bytes(), "audio/objects/aa/a.flac")
    audio = pl.DataFrame([{"media_id": "m", "sha256": "a", "audio_key": key, "status": "ok",
                           "duration_ms": 1000}])  # fmt: skip
    table, facts = transcribe_partition(audio, store, settings)
    assert table["reason"].to_list() == ["language_unsupported"]
    assert table["backend"].to_list() == ["pocketsphinx"] and facts.rejected == 1
    assert table["model"].to_list() == [sphinx.MODEL_NAME]


def test_auto_prefers_pretrained_whisper_then_faster_whisper_then_pocketsphinx(monkeypatch):
    auto = TranscriptionSettings(backend="auto")
    monkeypatch.setattr(transcripts, "faster_whisper_available", lambda: False)
    assert resolve_backend(auto, lambda: object()) == "transformers"  # weights on disk
    assert resolve_backend(auto, lambda: None) == "pocketsphinx"
    assert resolve_backend(auto) == "pocketsphinx"
    tiny = TranscriptionSettings(backend="auto", model={"profile": "tiny"})
    assert resolve_backend(tiny) == "transformers"  # asked for the tiny Whisper
    german = TranscriptionSettings(backend="auto", language="de")
    assert resolve_backend(german) == "transformers"  # pocketsphinx is English only
    monkeypatch.setattr(transcripts, "faster_whisper_available", lambda: True)
    assert resolve_backend(auto, lambda: None) == "faster_whisper"
    monkeypatch.setattr(transcripts, "faster_whisper_available", lambda: False)
    monkeypatch.setattr(transcripts, "pocketsphinx_available", lambda: False)
    assert resolve_backend(auto) == "transformers"  # the tiny Whisper, with the warning
    with pytest.raises(transcripts.BackendUnavailable, match="pip install pocketsphinx"):
        resolve_backend(TranscriptionSettings(backend="pocketsphinx"))
