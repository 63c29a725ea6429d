"""PocketSphinx over 16 kHz samples: a real English recognizer whose model ships in its wheel.

The ``pocketsphinx`` package (5.x, CMU Sphinx) carries its US English acoustic model,
pronouncing dictionary and 3-gram language model inside the wheel
(``pocketsphinx.get_model_path()``), so it transcribes real speech offline, with nothing
downloaded. It is much weaker than Whisper (a small continuous-HMM model from the 2010s) and
English only, so ``speech.transcription.backend: auto`` uses it only when no pretrained
Whisper is on disk and faster-whisper is not installed (``stages/transcripts.py``).

How an audio becomes :class:`~style_pipeline.speech.transcribe.Transcript` rows:

1. the audio (float32) becomes 16-bit PCM and pocketsphinx's voice-activity endpointer
   (:class:`pocketsphinx.Segmenter`) cuts it into speech regions at pauses;
2. each region is decoded as one utterance (``full_utt``); ``Decoder.seg()`` gives its
   words with start/end frames (100 frames a second) and each word's posterior probability
   ``seg.prob`` (its share of the lattice's probability mass, 0..1);
3. a region is split again where the decoder heard silence or noise for at least
   ``pocketsphinx_pause_s``; every part with a word is one segment.

Per word: ``probability`` is its posterior, clamped into [1e-6, 1]; alternative
pronunciations (``the(2)``) count as the word. Per segment: ``avg_logprob`` is the mean
natural log of its words' posteriors (the analogue of Whisper's mean token log-probability:
0 is certain, -1 is a word posterior of about 0.37 on average); ``no_speech_prob`` is the
share of the segment's span the decoder labelled silence, noise or filler (``<sil>``,
``[NOISE]``, ``++…++``), so a segment of a few words in a long noisy stretch scores high.
Times are the region's start plus frames / 100 s, clamped into the audio and ordered.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from style_pipeline.contracts.speech import SAMPLE_RATE, TranscriptionSettings
from style_pipeline.speech.transcribe import BackendUnavailable, Segment, Transcript, Word

MODEL_NAME = "pocketsphinx-en-us"
LANGUAGE = "en"  # the bundled model is US English
FRAME_RATE = 100  # pocketsphinx's default -frate: frames per second
_MIN_PROBABILITY = 1e-6
_ALTERNATIVE = re.compile(r"\(\d+\)$")  # the(2): the dictionary's second pronunciation
_NOT_WORDS = {"<s>", "</s>", "<sil>"}


class LanguageUnsupported(BackendUnavailable):
    """A language other than English was configured for the English-only model."""


def pocketsphinx_available() -> bool:
    """Whether the pocketsphinx package (and its bundled model) is importable."""
    try:
        import pocketsphinx  # type: ignore[import-untyped]  # noqa: F401
    except ImportError:
        return False
    return True


def check_language(settings: TranscriptionSettings) -> None:
    """``LanguageUnsupported`` unless the configured language is unset or English."""
    if settings.language not in (None, LANGUAGE):
        raise LanguageUnsupported(
            f"speech.transcription.language is {settings.language!r} but the pocketsphinx "
            f"backend's bundled model is English only: set language to null or en, or use a "
            f"Whisper backend"
        )


@dataclass(frozen=True)
class _Heard:
    """One ``seg()`` entry on the audio's clock (seconds)."""

    token: str
    start_s: float
    end_s: float
    probability: float

    @property
    def is_word(self) -> bool:
        return not (self.token in _NOT_WORDS or self.token.startswith(("[", "++")))


class SphinxTranscriber:
    """One pocketsphinx decoder (loaded once: the model takes about 0.4 s) for many audios."""

    def __init__(self, settings: TranscriptionSettings):
        try:
            from pocketsphinx import Decoder  # type: ignore[import-untyped]
        except ImportError as exc:
            raise BackendUnavailable(
                "speech.transcription.backend is pocketsphinx but the pocketsphinx package is "
                "not installed: `pip install pocketsphinx`, or set the backend to transformers"
            ) from exc
        self.settings = settings
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def __call__(self, audios: Sequence[np.ndarray]) -> list[Transcript]:
        check_language(self.settings)
        return [self.transcribe(samples) for samples in audios]

    def transcribe(self, samples: np.ndarray) -> Transcript:
        """The segments of one audio (16 kHz mono float32 in [-1, 1])."""
        from pocketsphinx import Segmenter  # type: ignore[import-untyped]

        duration = len(samples) / SAMPLE_RATE
        pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
        segments: list[Segment] = []
        floor = 0.0
        for region in Segmenter(sample_rate=SAMPLE_RATE).segment(io.BytesIO(pcm)):
            heard = self._decode(region.pcm, float(region.start_time), duration)
            for segment in _split(heard, self.settings.pocketsphinx_pause_s):
                if segment.start_s < floor:  # regions never overlap; keep it so
                    segment.start_s = floor
                    segment.end_s = max(segment.end_s, floor)
                floor = segment.end_s
                segments.append(segment)
        return Transcript(LANGUAGE, segments)

    def _decode(self, pcm: bytes, offset_s: float, limit_s: float) -> list[_Heard]:
        decoder: Any = self.decoder
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        heard = []
        for seg in decoder.seg():
            start = min(offset_s + seg.start_frame / FRAME_RATE, limit_s)
            end = min(max(offset_s + (seg.end_frame + 1) / FRAME_RATE, start), limit_s)
            probability = min(1.0, max(_MIN_PROBABILITY, float(seg.prob)))
            heard.append(_Heard(_ALTERNATIVE.sub("", seg.word), start, end, probability))
        return heard


def _split(heard: list[_Heard], pause_s: float) -> list[Segment]:
    """Segments of one region: cut where silence or noise lasts at least ``pause_s``."""
    groups: list[list[_Heard]] = [[]]
    for item in heard:
        if not item.is_word and item.end_s - item.start_s >= pause_s:
            groups.append([])
        else:
            groups[-1].append(item)
    segments = []
    for group in groups:
        words = [h for h in group if h.is_word]
        if not words:
            continue
        start, end = words[0].start_s, words[-1].end_s
        span = max(end - start, 1e-9)
        quiet = sum(h.end_s - h.start_s for h in group if not h.is_word
                    and h.start_s >= start and h.end_s <= end)  # fmt: skip
        logs = [math.log(w.probability) for w in words]
        floor = start
        timed = []
        for w in words:
            w_start = min(max(w.start_s, floor), end)
            w_end = min(max(w.end_s, w_start), end)
            floor = w_end
            timed.append(Word(f" {w.token}", w_start, w_end, round(w.probability, 6)))
        segments.append(
            Segment(
                start_s=start, end_s=end, text=" ".join(w.token for w in words),
                avg_logprob=round(sum(logs) / len(logs), 6),
                no_speech_prob=round(min(1.0, quiet / span), 6), words=timed,
            )
        )  # fmt: skip
    return segments
