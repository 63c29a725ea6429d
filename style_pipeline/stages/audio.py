"""The ``audio`` stage: every accepted video of ``raw_media`` to a 16 kHz mono FLAC, measured.

One row per accepted video (a media id once): ``ok`` with the FLAC stored at
``layout.audio_object_key(sha256)`` (content-addressed by the FLAC's bytes), its duration,
EBU R128 loudness and silence ratio; or ``rejected`` with an ``AudioRejectReason``
(``no_audio`` for a video ``raw_media`` probed without audio, without running ffmpeg).
A bad file never stops the others. Each row is cached under
``layout.audio_cache_key(derivation)``, the derivation being the sha256 of the video's
media id, the audio config and the ffmpeg build, so a re-run reuses it (while its FLAC is
still stored) and a config change or another ffmpeg derives again.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from style_pipeline.contracts.media import MediaKind, MediaStatus
from style_pipeline.contracts.speech import (
    SAMPLE_RATE,
    AudioRecord,
    AudioRejectReason,
    AudioSettings,
    SpeechStatus,
)
from style_pipeline.media.checksum import sha256_file
from style_pipeline.media.ffmpeg_bin import ffmpeg_exe, run_ffmpeg
from style_pipeline.media.workdirs import work_dir
from style_pipeline.speech.audio import AudioRejected, analyse_flac, extract_flac
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store
from style_pipeline.storage.tables import records_to_frame

_log = logging.getLogger(__name__)
# Rejections that another attempt may not repeat are never cached.
_TRANSIENT = {AudioRejectReason.TIMEOUT}


@dataclass
class AudioFacts:
    """What the ``audio`` asset reports besides the table."""

    videos: int = 0
    extracted: int = 0
    cached: int = 0
    rejected: int = 0
    seconds_of_audio: float = 0.0
    extract_seconds: float = 0.0
    rejects_by_reason: dict[str, int] = field(default_factory=dict)

    @property
    def realtime_factor(self) -> float:
        """Seconds of audio extracted and analysed per second of work (0: nothing done)."""
        return self.seconds_of_audio / self.extract_seconds if self.extract_seconds else 0.0


def empty_audio_table() -> pl.DataFrame:
    return records_to_frame([], AudioRecord)


@functools.cache
def ffmpeg_version() -> str:
    """ffmpeg's first ``-version`` line: a FLAC's bytes depend on the build."""
    done = run_ffmpeg([ffmpeg_exe(), "-hide_banner", "-version"], 30.0)
    return done.stdout.decode("utf-8", "replace").splitlines()[0] if done.stdout else "unknown"


def derivation_key(media_id: str, settings: AudioSettings) -> str:
    """sha256 of what an audio row derives from: the video, the config, the ffmpeg build."""
    payload = {"media_id": media_id, "config": settings.model_dump(mode="json"),
               "ffmpeg": ffmpeg_version(), "sample_rate": SAMPLE_RATE}  # fmt: skip
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _rejected(row: dict[str, Any], key: str, reason: AudioRejectReason, detail: str):
    return AudioRecord(
        media_id=row["media_id"], source_name=row["source_name"],
        status=SpeechStatus.REJECTED, reason=reason, detail=detail, derivation_key=key,
    )  # fmt: skip


def _cached(store: Store, key: str) -> AudioRecord | None:
    cache = layout.audio_cache_key(key)
    if not store.exists(cache):
        return None
    try:
        record = AudioRecord.model_validate_json(store.read_bytes(cache))
    except ValidationError:
        _log.warning("unreadable audio cache entry %s: derived again", cache)
        return None
    if record.status is SpeechStatus.OK and not (
        record.audio_key and store.exists(record.audio_key)
    ):
        return None  # the FLAC was deleted (retention): extract again
    return record


def _derive(row: dict[str, Any], key: str, store: Store, settings: AudioSettings) -> AudioRecord:
    """Extract, measure and store one video's audio (``AudioRejected`` when it cannot)."""
    with store.local_copy(row["object_path"]) as local, work_dir("audio_") as tmp:
        flac = extract_flac(Path(local), tmp / "audio.flac", settings)
        analysis = analyse_flac(flac, settings)
        if analysis.duration_ms > settings.max_duration_s * 1000:
            limit = f"speech.audio.max_duration_s {settings.max_duration_s:.0f}"
            detail = f"{analysis.duration_ms / 1000:.0f} s > {limit}"
            raise AudioRejected(AudioRejectReason.TOO_LONG, detail)
        sha = sha256_file(flac)
        audio_key = layout.audio_object_key(sha)
        store.put_immutable(flac, audio_key)
    return AudioRecord(
        media_id=row["media_id"], source_name=row["source_name"], sha256=sha,
        audio_key=audio_key, duration_ms=analysis.duration_ms, sample_rate=SAMPLE_RATE,
        channels=1, integrated_lufs=analysis.integrated_lufs,
        loudness_range_lu=analysis.loudness_range_lu, true_peak_dbtp=analysis.true_peak_dbtp,
        silence_ratio=analysis.silence_ratio, status=SpeechStatus.OK, derivation_key=key,
    )  # fmt: skip


def audio_record(
    row: dict[str, Any], store: Store, settings: AudioSettings, facts: AudioFacts
) -> AudioRecord:
    """The ``audio`` row of one accepted video: cached, derived, or rejected."""
    key = derivation_key(row["media_id"], settings)
    if row.get("has_audio") is False:
        return _rejected(row, key, AudioRejectReason.NO_AUDIO, "raw_media probed no audio stream")
    cached = _cached(store, key)
    if cached is not None:
        facts.cached += 1
        return cached.model_copy(update={"source_name": row["source_name"]})
    started = time.perf_counter()
    try:
        record = _derive(row, key, store, settings)
    except AudioRejected as exc:
        record = _rejected(row, key, exc.reason, exc.detail)
    facts.extract_seconds += time.perf_counter() - started
    if record.status is SpeechStatus.OK:
        facts.extracted += 1
        facts.seconds_of_audio += (record.duration_ms or 0) / 1000
    if record.reason not in _TRANSIENT:
        store.put_bytes(record.model_dump_json().encode(), layout.audio_cache_key(key))
    return record


def extract_audio(
    raw_media: pl.DataFrame,
    store: Store,
    settings: AudioSettings,
    log: Callable[[str], None] | None = None,
) -> tuple[pl.DataFrame, AudioFacts]:
    """The day's ``audio`` table from its accepted videos in ``raw_media``, and facts."""
    say = log or _log.info
    videos = raw_media.filter(
        (pl.col("status") == MediaStatus.ACCEPTED.value) & (pl.col("kind") == MediaKind.VIDEO.value)
    ).unique("media_id", keep="first", maintain_order=True)
    facts = AudioFacts(videos=videos.height)
    records = []
    for i, row in enumerate(videos.iter_rows(named=True), start=1):
        record = audio_record(row, store, settings, facts)
        records.append(record)
        say(f"audio {i}/{videos.height}: {row['source_name']} {record.status.value}"
            + (f" ({record.reason.value})" if record.reason else ""))  # fmt: skip
    facts.rejected = sum(r.status is SpeechStatus.REJECTED for r in records)
    facts.rejects_by_reason = dict(Counter(r.reason.value for r in records if r.reason))
    return records_to_frame(records, AudioRecord), facts
