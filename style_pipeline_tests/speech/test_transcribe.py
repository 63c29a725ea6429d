"""Whisper over a real speech clip with the tiny random-init model: well-formed, ordered rows.

Random weights make the text garbage; what is checked is the shape: windows batched,
segments and words inside their window and in time order, language, log-probabilities.
"""

from __future__ import annotations

import numpy as np
import pytest

from style_pipeline.contracts.speech import TranscriptionSettings, WhisperModelConfig
from style_pipeline.models.whisper import load_whisper
from style_pipeline.speech.audio import extract_flac, read_samples
from style_pipeline.speech.transcribe import (
    BackendUnavailable,
    faster_whisper_available,
    transcribe_batch,
    transcribe_faster_whisper,
    windows,
)
from style_pipeline.stages.transcripts import resolve_backend
from style_pipeline_tests.speech.speech_media import half_silent_video, speech_wav


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    config = WhisperModelConfig(profile="tiny", cache_dir=str(tmp_path_factory.mktemp("m")))
    return load_whisper(config)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    from style_pipeline.contracts.speech import AudioSettings

    root = tmp_path_factory.mktemp("clip")
    half_silent_video(root / "half.mp4", speech_wav(root / "s.wav"))
    return read_samples(extract_flac(root / "half.mp4", root / "a.flac", AudioSettings()))


@pytest.mark.parametrize(
    ("seconds", "chunk_s", "starts"),
    [(0.0, 30, [0.0]), (10.0, 30, [0.0]), (10.0, 4, [0.0, 4.0, 8.0]), (8.0, 4, [0.0, 4.0])],
)
def test_windows(seconds, chunk_s, starts):
    samples = np.zeros(int(seconds * 16000), np.float32)
    cut = windows(samples, chunk_s)
    assert [s for s, _ in cut] == starts
    assert sum(len(w) for _, w in cut) == len(samples)


def _check_ordered(transcript, duration_s):
    previous = 0.0
    for seg in transcript.segments:
        assert previous <= seg.start_s <= seg.end_s <= duration_s + 1e-6
        previous = seg.start_s
        assert seg.text and seg.avg_logprob is not None and seg.avg_logprob <= 0
        assert 0.0 <= seg.no_speech_prob <= 1.0
        word_start = seg.start_s
        for word in seg.words:
            assert word_start <= word.start_s <= word.end_s <= seg.end_s + 1e-6
            assert 0.0 <= word.probability <= 1.0
            word_start = word.start_s


def test_tiny_whisper_transcribes_long_audio_in_batched_windows(tiny, speech):
    settings = TranscriptionSettings(chunk_s=4, batch_size=3, max_new_tokens=24)
    short = speech[: 16000 * 3]
    long_t, short_t = transcribe_batch(tiny, [speech, short], settings)
    for transcript, samples in ((long_t, speech), (short_t, short)):
        assert transcript.language in {v.strip("<|>") for v in
                                       tiny.model.generation_config.lang_to_id}  # fmt: skip
        assert transcript.segments
        _check_ordered(transcript, len(samples) / 16000)
    # the 8.5 s clip is heard in three 4 s windows: segments reach past the first window
    assert max(s.end_s for s in long_t.segments) > 4.0
    assert any(seg.words for seg in long_t.segments)


def test_configured_language_and_no_word_timestamps(tiny, speech):
    settings = TranscriptionSettings(language="en", word_timestamps=False, max_new_tokens=12)
    (transcript,) = transcribe_batch(tiny, [speech], settings)
    assert transcript.language == "en"
    assert all(not seg.words for seg in transcript.segments)


def test_empty_audio_gives_a_transcript(tiny):
    (transcript,) = transcribe_batch(
        tiny, [np.zeros(0, np.float32)], TranscriptionSettings(max_new_tokens=8)
    )
    _check_ordered(transcript, 0.0)


@pytest.mark.skipif(faster_whisper_available(), reason="faster-whisper is installed here")
def test_faster_whisper_backend_says_how_to_install_it():
    settings = TranscriptionSettings(backend="faster_whisper")
    with pytest.raises(BackendUnavailable, match="pip install faster-whisper"):
        resolve_backend(settings)
    with pytest.raises(BackendUnavailable, match="pip install faster-whisper"):
        transcribe_faster_whisper([np.zeros(16000, np.float32)], settings)
    tiny = TranscriptionSettings(backend="auto", model={"profile": "tiny"})
    assert resolve_backend(tiny) == "transformers"


def test_english_only_model_needs_no_language_tokens(tiny, speech, tmp_path):
    import copy

    english = copy.copy(tiny)
    english.model = copy.deepcopy(tiny.model)
    generation = english.model.generation_config
    generation.is_multilingual = False
    del generation.lang_to_id, generation.task_to_id
    (transcript,) = transcribe_batch(english, [speech[:32000]], TranscriptionSettings(
        max_new_tokens=8))  # fmt: skip
    assert transcript.language == "en"
    _check_ordered(transcript, 2.0)
