"""The speech assets' checks find the rows that break the contract."""

from __future__ import annotations

import polars as pl
import pytest

from style_pipeline.contracts.speech import AudioRecord, TranscriptSegment, WordTiming
from style_pipeline.defs.speech.assets import audio_problems, transcript_problems
from style_pipeline.stages.transcripts import transcript_frame
from style_pipeline.storage.tables import records_to_frame

SHA = "a" * 64


def _audio(**fields) -> AudioRecord:
    base = dict(media_id="m", source_name="v.mp4", sha256=SHA, audio_key=f"a/{SHA}.flac",
                duration_ms=1000, sample_rate=16000, channels=1, silence_ratio=0.5, status="ok",
                derivation_key=SHA)  # fmt: skip
    return AudioRecord(**(base | fields))


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        (_audio(), None),
        (_audio(status="rejected", reason="no_audio", sha256=None, audio_key=None), None),
        (_audio(sample_rate=44100), "ok_incomplete"),
        (_audio(duration_ms=None), "ok_incomplete"),
        (_audio(silence_ratio=None), "ok_incomplete"),
        (_audio(sha256=None), "ok_incomplete"),
        (_audio(status="rejected"), "rejected_without_reason"),
    ],
)
def test_audio_problems(record, problem):
    found = audio_problems(records_to_frame([record], AudioRecord))
    assert {k for k, n in found.items() if n} == ({problem} if problem else set())


def _segment(start, end, words=(), media_id="m", index=0, **fields) -> TranscriptSegment:
    return TranscriptSegment(
        media_id=media_id, segment_id=f"s{index}", start_ms=start, end_ms=end, text="x",
        language="en", model="tiny", backend="transformers",
        words=[WordTiming(word=" x", start_ms=a, end_ms=b, probability=0.5) for a, b in words],
        **fields,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("segments", "problem"),
    [
        ([_segment(0, 100, [(0, 50), (50, 100)]), _segment(100, 200, index=1)], None),
        ([_segment(100, 50)], "segments_inverted"),
        ([_segment(0, 100, [(50, 120)])], "words_out_of_order"),
        ([_segment(0, 100, [(60, 80), (10, 20)])], "words_out_of_order"),
        ([_segment(500, 600), _segment(100, 200, index=1)], "segments_out_of_order"),
        ([_segment(500, 600), _segment(100, 200, media_id="other", index=1)], None),
        ([_segment(0, 0, status="rejected")], "rejected_without_reason"),
    ],
)
def test_transcript_problems(segments, problem):
    found = transcript_problems(transcript_frame(segments))
    assert {k for k, n in found.items() if n} == ({problem} if problem else set())


def test_empty_tables_have_no_problems():
    assert not any(audio_problems(records_to_frame([], AudioRecord)).values())
    assert not any(transcript_problems(transcript_frame([])).values())
    assert isinstance(transcript_frame([]), pl.DataFrame)
