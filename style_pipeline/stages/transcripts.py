"""The ``transcripts`` stage: every ``ok`` row of ``audio`` through Whisper, one row per segment.

The backend comes from ``speech.transcription.backend`` (``transformers``: the model from
the pretrained|tiny|auto resolver in ``models/whisper.py``; ``faster_whisper`` when that
package is installed; ``pocketsphinx``, English, its model inside the wheel,
``speech/sphinx.py``; ``auto`` picks one, see :func:`resolve_backend`). Audios are
transcribed ``batch_size`` at a time, their windows batched together
(``speech/transcribe.py``). The segments of one FLAC are cached under
``layout.transcript_cache_key(derivation)``, the derivation being the sha256 of the FLAC's
sha256, the model id, the backend and the config that changes the output, so a re-run
reuses them. An audio whose FLAC is missing or does not decode, or on which the model
raises, becomes one ``rejected`` row with a reason; the others go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
from pydantic import TypeAdapter, ValidationError, create_model

from style_pipeline.contracts.speech import (
    SAMPLE_RATE,
    AudioRejectReason,
    SpeechStatus,
    TranscriptionSettings,
    TranscriptRejectReason,
    TranscriptSegment,
    WordTiming,
)
from style_pipeline.speech.audio import AudioRejected, read_samples
from style_pipeline.speech.sphinx import (
    LANGUAGE,
    MODEL_NAME,
    LanguageUnsupported,
    SphinxTranscriber,
    pocketsphinx_available,
)
from style_pipeline.speech.transcribe import (
    BackendUnavailable,
    Transcript,
    faster_whisper_available,
    transcribe_batch,
    transcribe_faster_whisper,
)
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import polars_schema

if TYPE_CHECKING:
    from style_pipeline.models.whisper import LoadedWhisper

_log = logging.getLogger(__name__)
_SEGMENTS = TypeAdapter(list[TranscriptSegment])
# Fields that do not change a transcript (how work is batched, which package parses it).
_NOT_IN_KEY = {"batch_size"}
Transcriber = Callable[[Sequence[np.ndarray]], list[Transcript]]


@dataclass
class TranscriptFacts:
    """What the ``transcripts`` asset reports besides the table."""

    audios: int = 0
    transcribed: int = 0
    cached: int = 0
    rejected: int = 0
    segments: int = 0
    words: int = 0
    seconds_of_audio: float = 0.0
    transcribe_seconds: float = 0.0
    backend: str = ""
    model: dict[str, str] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    rejects_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio transcribed per second of work (0: nothing transcribed)."""
        return self.seconds_of_audio / self.transcribe_seconds if self.transcribe_seconds else 0.0


def transcript_schema() -> pl.Schema:
    """The table's schema: the record's columns in order, ``words`` a list of structs."""
    fields: dict[str, Any] = {
        name: (f.annotation, None)
        for name, f in TranscriptSegment.model_fields.items()
        if name != "words"
    }
    flat = create_model("_FlatSegment", **fields)
    columns = dict(polars_schema(flat))
    columns["words"] = pl.List(pl.Struct(dict(polars_schema(WordTiming))))
    return pl.Schema({name: columns[name] for name in TranscriptSegment.model_fields})


def transcript_frame(records: Sequence[TranscriptSegment]) -> pl.DataFrame:
    """Segments -> the typed table (enums as their values)."""
    rows = [r.model_dump(mode="json") for r in records]
    return pl.DataFrame(rows, schema=transcript_schema())


def empty_transcripts_table() -> pl.DataFrame:
    return transcript_frame([])


def derivation_key(
    audio_sha256: str, model: str, backend: str, settings: TranscriptionSettings
) -> str:
    """sha256 of what a FLAC's segments derive from."""
    config = settings.model_dump(mode="json", exclude=_NOT_IN_KEY)
    payload = {"audio": audio_sha256, "model": model, "backend": backend, "config": config}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def segment_id(derivation: str, index: int) -> str:
    """A segment's content address: its FLAC's derivation key and its position."""
    return hashlib.sha256(f"{derivation}:{index}".encode()).hexdigest()[:32]


def _records(
    row: dict[str, Any], transcript: Transcript, key: str, model: str, backend: str
) -> list[TranscriptSegment]:
    def ms(seconds: float) -> int:
        return max(0, round(seconds * 1000))

    return [
        TranscriptSegment(
            media_id=row["media_id"], segment_id=segment_id(key, i), start_ms=ms(s.start_s),
            end_ms=max(ms(s.end_s), ms(s.start_s)), text=s.text, language=transcript.language,
            avg_logprob=s.avg_logprob, no_speech_prob=s.no_speech_prob,
            words=[WordTiming(word=w.word, start_ms=ms(w.start_s),
                              end_ms=max(ms(w.end_s), ms(w.start_s)), probability=w.probability)
                   for w in s.words],
            model=model, backend=backend, audio_sha256=row["sha256"],
        )
        for i, s in enumerate(transcript.segments)
    ]  # fmt: skip


def _rejected(row: dict[str, Any], model: str, backend: str,
              reason: TranscriptRejectReason, detail: str) -> TranscriptSegment:  # fmt: skip
    return TranscriptSegment(
        media_id=row["media_id"], segment_id="", start_ms=0, end_ms=0, text="", language="",
        model=model, backend=backend, audio_sha256=row.get("sha256"),
        status=SpeechStatus.REJECTED, reason=reason, detail=detail[:2000],
    )  # fmt: skip


def _pretrained_whisper(settings: TranscriptionSettings) -> LoadedWhisper | None:
    """The pretrained Whisper when its weights are on disk (local files only), else None."""
    from style_pipeline.models.profiles import PretrainedUnavailable
    from style_pipeline.models.whisper import load_whisper_pretrained

    try:
        return load_whisper_pretrained(settings.model)
    except PretrainedUnavailable as exc:
        _log.info("transcription backend auto: no pretrained Whisper on disk (%s)", exc)
        return None


def resolve_backend(
    settings: TranscriptionSettings, pretrained: Callable[[], object | None] | None = None
) -> str:
    """``transformers``, ``faster_whisper`` or ``pocketsphinx`` for the configured backend.

    ``auto``: ``transformers`` when ``model.profile`` is ``tiny`` (asked for) or the
    pretrained Whisper loads from disk (``pretrained()``, never the tiny one), else
    ``faster_whisper`` when installed, else ``pocketsphinx`` when installed and the
    language is unset or English, else ``transformers`` (the resolver then falls back to
    the tiny Whisper, loudly). An explicit backend that is not installed raises
    :class:`BackendUnavailable` saying how to install it."""
    if settings.backend == "auto":
        if settings.model.profile == "tiny":
            return "transformers"
        if settings.model.profile == "pretrained" or (pretrained or (lambda: None))():
            return "transformers"
        if faster_whisper_available():
            return "faster_whisper"
        if pocketsphinx_available() and settings.language in (None, LANGUAGE):
            return "pocketsphinx"
        return "transformers"
    if settings.backend == "faster_whisper" and not faster_whisper_available():
        raise BackendUnavailable(
            "speech.transcription.backend is faster_whisper but the faster-whisper package is "
            "not installed: `pip install faster-whisper`, or set the backend to transformers"
        )
    if settings.backend == "pocketsphinx" and not pocketsphinx_available():
        raise BackendUnavailable(
            "speech.transcription.backend is pocketsphinx but the pocketsphinx package is "
            "not installed: `pip install pocketsphinx`, or set the backend to transformers"
        )
    return settings.backend


def load_transcriber(
    settings: TranscriptionSettings,
) -> tuple[str, str, Transcriber, dict[str, str]]:
    """(backend, model id, transcriber, model metadata) for the config."""
    found: list[LoadedWhisper] = []

    def probe() -> LoadedWhisper | None:
        loaded = _pretrained_whisper(settings)
        found.extend([loaded] if loaded is not None else [])
        return loaded

    backend = resolve_backend(settings, probe if settings.backend == "auto" else None)
    if backend == "faster_whisper":
        name = f"faster-whisper:{settings.faster_whisper_model}"
        return backend, name, lambda audios: transcribe_faster_whisper(audios, settings)[1], {
            "whisper_model_id": name}  # fmt: skip
    if backend == "pocketsphinx":
        sphinx = SphinxTranscriber(settings)
        return backend, MODEL_NAME, sphinx, {"transcription_model_id": MODEL_NAME}
    from style_pipeline.models.whisper import load_whisper

    loaded = found[0] if found else load_whisper(settings.model)
    return backend, loaded.model_id, lambda audios: transcribe_batch(loaded, audios, settings), (
        loaded.metadata())  # fmt: skip


def transcribe_partition(
    audio: pl.DataFrame,
    store: Store,
    settings: TranscriptionSettings,
    log: Callable[[str], None] | None = None,
    transcriber: tuple[str, str, Transcriber, dict[str, str]] | None = None,
) -> tuple[pl.DataFrame, TranscriptFacts]:
    """The day's ``transcripts`` table from its ``audio`` table, and facts; ``transcriber``
    (backend, model id, function, metadata) replaces the configured one (tests)."""
    say = log or _log.info
    rows = audio.filter(pl.col("status") == SpeechStatus.OK.value).to_dicts()
    facts = TranscriptFacts(audios=len(rows))
    if not rows:
        return empty_transcripts_table(), facts
    backend, model, transcribe, model_facts = transcriber or load_transcriber(settings)
    facts.backend, facts.model = backend, model_facts
    done: dict[int, list[TranscriptSegment]] = {}
    pending: list[tuple[int, dict[str, Any], str]] = []
    for i, row in enumerate(rows):
        key = derivation_key(row["sha256"], model, backend, settings)
        cached = _cached(store, key)
        if cached is not None:
            facts.cached += 1
            done[i] = [c.model_copy(update={"media_id": row["media_id"]}) for c in cached]
        else:
            pending.append((i, row, key))
    finished = 0
    for group in audio_groups(pending, settings):
        _transcribe_group(group, store, transcribe, model, backend, facts, done)
        finished += len(group)
        say(f"transcripts: {finished}/{len(pending)} audios transcribed "
            f"({facts.cached} cached)")  # fmt: skip
    records = [record for i in sorted(done) for record in done[i]]
    ok = [r for r in records if r.status is SpeechStatus.OK]
    facts.segments, facts.words = len(ok), sum(len(r.words) for r in ok)
    facts.rejected = sum(r.status is SpeechStatus.REJECTED for r in records)
    facts.rejects_by_reason = dict(Counter(r.reason.value for r in records if r.reason))
    facts.languages = dict(Counter(r.language for r in ok))
    return transcript_frame(records), facts


def audio_groups(
    pending: list[tuple[int, dict[str, Any], str]], settings: TranscriptionSettings
) -> list[list[tuple[int, dict[str, Any], str]]]:
    """Audios transcribed together: short ones until their windows fill a batch (their
    windows share ``generate`` calls), a long one alone (its own windows fill the batches),
    so at most about one batch of short audios, or one long audio, is in memory."""
    budget_ms = settings.batch_size * settings.chunk_s * 1000
    groups: list[list[tuple[int, dict[str, Any], str]]] = []
    used = 0.0
    for item in pending:
        length = item[1].get("duration_ms") or 0
        if not groups or used + length > budget_ms:
            groups.append([])
            used = 0.0
        groups[-1].append(item)
        used += length
    return groups


def _cached(store: Store, key: str) -> list[TranscriptSegment] | None:
    cache = layout.transcript_cache_key(key)
    if not store.exists(cache):
        return None
    try:
        return _SEGMENTS.validate_json(store.read_bytes(cache))
    except ValidationError:
        _log.warning("unreadable transcript cache entry %s: transcribed again", cache)
        return None


def _transcribe_group(
    group: list[tuple[int, dict[str, Any], str]],
    store: Store,
    transcribe: Transcriber,
    model: str,
    backend: str,
    facts: TranscriptFacts,
    done: dict[int, list[TranscriptSegment]],
) -> None:
    """Transcribe a group of audios together; when the model raises, each alone, so one
    bad audio is rejected and the others are kept."""
    readable: list[tuple[int, dict[str, Any], str, np.ndarray]] = []
    for i, row, key in group:
        try:
            readable.append((i, row, key, _samples(store, row)))
        except AudioRejected as exc:
            done[i] = [_rejected(row, model, backend, TranscriptRejectReason.AUDIO_UNREADABLE,
                                 exc.detail)]  # fmt: skip
    if not readable:
        return
    started = time.perf_counter()
    try:
        results: list[Transcript | Exception] = list(transcribe([r[3] for r in readable]))
    except Exception:  # noqa: BLE001 - isolate the audio that fails, keep the others
        results = []
        for item in readable:
            try:
                results.append(transcribe([item[3]])[0])
            except Exception as exc:  # noqa: BLE001 - one audio's failure is its reject row
                results.append(exc)
    facts.transcribe_seconds += time.perf_counter() - started
    for (i, row, key, samples), result in zip(readable, results, strict=True):
        if isinstance(result, Exception):
            detail = f"{type(result).__name__}: {result}"
            reason = (TranscriptRejectReason.LANGUAGE_UNSUPPORTED
                      if isinstance(result, LanguageUnsupported)
                      else TranscriptRejectReason.TRANSCRIPTION_FAILED)  # fmt: skip
            done[i] = [_rejected(row, model, backend, reason, detail)]
            continue
        records = _records(row, result, key, model, backend)
        store.put_bytes(_SEGMENTS.dump_json(records), layout.transcript_cache_key(key))
        done[i] = records
        facts.transcribed += 1
        facts.seconds_of_audio += len(samples) / SAMPLE_RATE


def _samples(store: Store, row: dict[str, Any]) -> np.ndarray:
    """The FLAC of an ``audio`` row as samples; ``AudioRejected`` when missing or broken."""
    key = row.get("audio_key")
    if not key or not store.exists(key):
        raise AudioRejected(AudioRejectReason.DECODE_FAILED, f"FLAC {key!r} is not stored")
    with store.local_copy(key) as local:
        return read_samples(local)
