"""Speech group: ``audio`` (each accepted video's 16 kHz mono FLAC, loudness, silence) and
``transcripts`` (Whisper segments with word timings).

Wiring and reporting only: the work is in ``stages/audio.py`` and ``stages/transcripts.py``.
Stages are imported inside each asset, so loading the code location imports no torch.
"""

import time

import dagster as dg
import polars as pl

from style_pipeline.defs.metadata import counts_by, sample_table, table_metadata
from style_pipeline.defs.ownership import group_options
from style_pipeline.defs.partitions import DAILY_PARTITIONS
from style_pipeline.defs.resources import SettingsResource, StorageResource

SPEECH = group_options("speech")
AUDIO_COLUMNS = ["source_name", "status", "reason", "duration_ms", "integrated_lufs",
                 "true_peak_dbtp", "silence_ratio"]  # fmt: skip
SEGMENT_COLUMNS = ["media_id", "start_ms", "end_ms", "language", "avg_logprob",
                   "no_speech_prob", "text"]  # fmt: skip


def _rounded(value: object) -> float | None:
    """A column statistic for metadata (None: no rows or no values)."""
    return round(float(value), 3) if isinstance(value, int | float) else None


def audio_problems(table: pl.DataFrame) -> dict[str, int]:
    """Rows that break the contract: ok rows without their FLAC facts, rejects without a
    known reason."""
    from style_pipeline.contracts.speech import SAMPLE_RATE, AudioRejectReason

    ok = table.filter(pl.col("status") == "ok")
    rejected = table.filter(pl.col("status") == "rejected")
    known = [r.value for r in AudioRejectReason]
    return {
        "ok_incomplete": ok.filter(
            pl.col("sha256").is_null()
            | pl.col("audio_key").is_null()
            | pl.col("sample_rate").ne_missing(SAMPLE_RATE)
            | pl.col("channels").ne_missing(1)
            | ~(pl.col("duration_ms") > 0).fill_null(False)
            | ~pl.col("silence_ratio").is_between(0, 1).fill_null(False)
        ).height,
        "rejected_without_reason": rejected.filter(
            ~pl.col("reason").is_in(known).fill_null(False)
        ).height,
    }


def transcript_problems(table: pl.DataFrame) -> dict[str, int]:
    """Segments out of order (start > end, words outside their segment or unordered,
    segments of one video not in time order) and rejects without a reason."""
    ok = table.filter(pl.col("status") == "ok")
    words = ok.select("segment_id", "start_ms", "end_ms", pl.col("words")).explode("words")
    words = words.filter(pl.col("words").is_not_null()).unnest("words", separator=".")
    bad_words = words.filter(
        (pl.col("words.start_ms") > pl.col("words.end_ms"))
        | (pl.col("words.start_ms") < pl.col("start_ms"))
        | (pl.col("words.end_ms") > pl.col("end_ms"))
        | (pl.col("words.start_ms").diff().over("segment_id") < 0)
    )
    # rows are in time order per video: a start earlier than the row before is out of order
    unordered = ok.filter(pl.col("start_ms").diff().over("media_id") < 0)
    return {
        "segments_inverted": ok.filter(pl.col("start_ms") > pl.col("end_ms")).height,
        "words_out_of_order": bad_words.height,
        "segments_out_of_order": unordered.height,
        "rejected_without_reason": table.filter(
            (pl.col("status") == "rejected") & pl.col("reason").is_null()
        ).height,
    }


@dg.asset(
    **SPEECH,
    kinds={"ffmpeg", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "audio_rows_complete",
            asset="audio",
            partitions_def=DAILY_PARTITIONS,
            description="every ok row has its FLAC (sha256, key), 16 kHz mono, a duration and "
            "a silence ratio in [0, 1]; every rejected row a known reason",
        )
    ],
)
def audio(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    raw_media: pl.DataFrame,
):
    """Each accepted video's audio: 16 kHz mono FLAC, EBU R128 loudness, silence ratio."""
    from style_pipeline.stages.audio import empty_audio_table, extract_audio

    started = time.perf_counter()
    cfg = settings.load().speech
    if not cfg.enabled:
        table = empty_audio_table()
        context.log.info("speech.enabled is false: no audio is extracted")
        yield dg.Output(
            table, metadata={**table_metadata(table), "reason": "speech.enabled is false"}
        )
    else:
        table, facts = extract_audio(raw_media, storage.store(), cfg.audio, log=context.log.info)
        for row in table.filter(pl.col("status") == "rejected").iter_rows(named=True):
            context.log.warning(f"no audio from {row['source_name']!r}: {row['reason']}"
                                f" ({row['detail']})")  # fmt: skip
        ok = table.filter(pl.col("status") == "ok")
        yield dg.Output(
            table,
            metadata={
                **table_metadata(table),
                "videos": facts.videos,
                "ok": ok.height,
                "extracted": facts.extracted,
                "cached": facts.cached,
                "rejected": facts.rejected,
                "rejects_by_reason": facts.rejects_by_reason,
                "audio_seconds": round(facts.seconds_of_audio, 3),
                "realtime_factor": round(facts.realtime_factor, 1),
                "median_lufs": _rounded(ok["integrated_lufs"].median()),
                "mean_silence_ratio": _rounded(ok["silence_ratio"].mean()),
                "seconds": round(time.perf_counter() - started, 3),
                "sample": sample_table(table, AUDIO_COLUMNS),
            },
        )
    problems = audio_problems(table)
    yield dg.AssetCheckResult(
        check_name="audio_rows_complete",
        passed=not any(problems.values()),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={**problems, "rejects_by_reason": counts_by(
            table.filter(pl.col("status") == "rejected"), "reason")},
    )  # fmt: skip


@dg.asset(
    **SPEECH,
    kinds={"pytorch", "parquet"},
    check_specs=[
        dg.AssetCheckSpec(
            "segments_ordered",
            asset="transcripts",
            partitions_def=DAILY_PARTITIONS,
            description="start <= end for every segment and word, words inside their segment "
            "and in order, a video's segments in time order; rejects have a reason",
        )
    ],
)
def transcripts(
    context: dg.AssetExecutionContext,
    settings: SettingsResource,
    storage: StorageResource,
    audio: pl.DataFrame,
):
    """Whisper segments of every ok audio: ms timestamps, words, language, confidence."""
    from style_pipeline.stages.transcripts import empty_transcripts_table, transcribe_partition

    started = time.perf_counter()
    cfg = settings.load().speech
    if not cfg.enabled:
        table = empty_transcripts_table()
        context.log.info("speech.enabled is false: nothing is transcribed")
        yield dg.Output(
            table, metadata={**table_metadata(table), "reason": "speech.enabled is false"}
        )
    else:
        table, facts = transcribe_partition(
            audio, storage.store(), cfg.transcription, log=context.log.info
        )
        if facts.model.get("whisper_fallback_reason"):
            context.log.warning(
                f"WHISPER FELL BACK TO TINY: {facts.model['whisper_fallback_reason']}"
            )
        for row in table.filter(pl.col("status") == "rejected").iter_rows(named=True):
            context.log.warning(f"no transcript for {row['media_id'][:12]}: {row['reason']}"
                                f" ({row['detail']})")  # fmt: skip
        yield dg.Output(
            table,
            metadata={
                **table_metadata(table),
                **facts.model,
                "backend": facts.backend,
                "audios": facts.audios,
                "transcribed": facts.transcribed,
                "cached": facts.cached,
                "rejected": facts.rejected,
                "rejects_by_reason": facts.rejects_by_reason,
                "segments": facts.segments,
                "words": facts.words,
                "languages": facts.languages,
                "audio_seconds": round(facts.seconds_of_audio, 3),
                "transcribe_seconds": round(facts.transcribe_seconds, 3),
                "realtime_factor": round(facts.realtime_factor, 2),
                "seconds": round(time.perf_counter() - started, 3),
                "sample": sample_table(table.filter(pl.col("status") == "ok"), SEGMENT_COLUMNS),
            },
        )
    problems = transcript_problems(table)
    yield dg.AssetCheckResult(
        check_name="segments_ordered",
        passed=not any(problems.values()),
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=problems,
    )
