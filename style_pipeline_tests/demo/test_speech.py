"""The demo video's speech (espeak-ng, muxed by ffmpeg) and its chat log."""

from __future__ import annotations

import av
import numpy as np
import pytest

from style_pipeline.demo import samples as samples_module
from style_pipeline.demo.samples import populate_drop
from style_pipeline.demo.speech import (
    ANSWER_DELAY_S,
    ESPEAK_RATE_HZ,
    EXTRA_SCRIPTS,
    SCRIPT,
    chat_log_text,
    espeak_binary,
    split_salt,
    synthesize,
    talk_plan,
    talk_seconds,
)
from style_pipeline.media.sniff import chat_video_stem

needs_espeak = pytest.mark.skipif(espeak_binary() is None, reason="espeak-ng is not installed")
SECONDS = 14.0


def _audio(path) -> tuple[np.ndarray, int]:
    """The first audio stream of ``path`` as mono float samples and its rate."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        rate = stream.rate
        chunks = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
    return np.concatenate(chunks).astype(np.float64), rate


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x**2))) if len(x) else 0.0


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    drop = tmp_path_factory.mktemp("drop")
    return populate_drop(drop, video_seconds=SECONDS, width=128, height=72, n_photos=0)


def test_talk_plan_puts_questions_before_their_answers():
    plan = talk_plan(30.0, [3.0] * len(SCRIPT))
    questions = [m for m in plan.chat if m.question]
    assert len(questions) == len(plan.speech) >= 4
    for asked, spoken in zip(questions, plan.speech, strict=True):
        assert spoken.start_s == asked.at_s + ANSWER_DELAY_S
        assert spoken.answers == asked.text
    starts = [s.start_s for s in plan.speech]
    assert all(a.end_s < b.start_s for a, b in zip(plan.speech, plan.speech[1:], strict=False))
    assert starts == sorted(starts) and plan.speech[-1].end_s <= 30.0
    assert [m.at_s for m in plan.chat] == sorted(m.at_s for m in plan.chat)
    assert any(not m.question for m in plan.chat)  # chatter that asks nothing
    assert talk_plan(2.0, [3.0] * len(SCRIPT)).speech == []  # nothing fits


@needs_espeak
def test_espeak_speaks_at_its_rate():
    voice = synthesize("good question", espeak_binary())
    assert voice.dtype == np.int16 and 0.3 < len(voice) / ESPEAK_RATE_HZ < 3.0
    assert np.abs(voice).max() > 1000


@needs_espeak
def test_the_video_has_an_audio_stream_with_speech_where_the_plan_says(sample):
    assert sample.speech_note is None and sample.talk is not None
    assert len(sample.talk.speech) >= 2
    with av.open(str(sample.video)) as container:
        assert len(container.streams.video) == 1 and len(container.streams.audio) == 1
        assert container.streams.audio[0].codec_context.name == "aac"
        duration = container.duration / 1e6
    assert duration == pytest.approx(SECONDS, abs=0.3)
    audio, rate = _audio(sample.video)
    speech = np.concatenate(
        [audio[int(s.start_s * rate) : int(s.end_s * rate)] for s in sample.talk.speech]
    )
    quiet = audio[: int(sample.talk.speech[0].start_s * rate) - rate // 10]
    assert _rms(speech) > 0.02  # espeak-ng's voice, well above the noise floor
    assert _rms(quiet) < _rms(speech) / 50  # silence between the answers


@needs_espeak
def test_the_chat_log_is_well_formed_and_precedes_the_answers(sample):
    from style_pipeline.contracts.chat import ChatFormat, GenericChatMapping
    from style_pipeline.speech.chat_formats import detect_format, parse_chat, to_video_clock

    log = sample.chat_log
    assert log is not None and log.name == "demo_cuts.chat.log"
    assert chat_video_stem(log.name) == sample.video.stem  # ingest files it with its video
    data = log.read_bytes()
    assert data.decode() == chat_log_text(sample.talk)
    assert detect_format(data, log.suffix) is ChatFormat.TWITCH_IRC
    parsed = parse_chat(data, ChatFormat.TWITCH_IRC, GenericChatMapping())
    assert all(line.ok for line in parsed.lines), [ln.detail for ln in parsed.lines if not ln.ok]
    placed, origin = to_video_clock(parsed)
    assert origin == "relative"  # [H:MM:SS] from the start: the video's clock
    assert [(p.ts_ms, p.line.user, p.line.text) for p in placed] == [
        (m.at_s * 1000, m.user, m.text) for m in sample.talk.chat
    ]
    by_text = {p.line.text: p.ts_ms for p in placed}
    for spoken in sample.talk.speech:
        assert by_text[spoken.answers] < spoken.start_s * 1000


def test_without_espeak_the_video_is_silent_and_says_why(tmp_path, monkeypatch):
    monkeypatch.setattr(samples_module, "espeak_binary", lambda: None)
    sample = populate_drop(tmp_path, video_seconds=3.0, width=128, height=72, n_photos=0)
    assert sample.chat_log is None and sample.talk is None
    assert "espeak-ng is not installed" in (sample.speech_note or "")
    with av.open(str(sample.video)) as container:
        assert not container.streams.audio


@needs_espeak
def test_the_extra_clips_speak_their_own_script_with_their_own_chat_log(sample):
    assert len(sample.talks) == len(EXTRA_SCRIPTS) >= 2
    assert sample.speaking_videos() == [sample.video, *(v for v, _, _ in sample.talks)]
    asked = {m.text for m in sample.talk.chat if m.question}
    for (video, log, plan), script in zip(sample.talks, EXTRA_SCRIPTS, strict=True):
        assert log.name == f"{video.stem}.chat.log" and chat_video_stem(log.name) == video.stem
        assert log.read_text() == chat_log_text(plan)
        assert [s.text for s in plan.speech] == [answer for _, _, answer in script]  # all fit
        assert not asked & {m.text for m in plan.chat}  # different questions
        with av.open(str(video)) as container:
            assert len(container.streams.audio) == 1
            assert container.duration / 1e6 == pytest.approx(
                talk_seconds([s.end_s - s.start_s for s in plan.speech]), abs=0.3
            )


def test_talk_seconds_fits_every_answer():
    durations = [3.2, 2.1]
    seconds = talk_seconds(durations)
    plan = talk_plan(seconds, durations)
    assert len(plan.speech) == 2 and plan.speech[-1].end_s <= seconds
    assert seconds == int(seconds)


def test_split_salt_puts_the_speaking_videos_in_train_and_val():
    from style_pipeline.contracts.alignment import SftSplit
    from style_pipeline.llm.sft_dataset import split_of

    ids = [f"{n:064x}" for n in range(3)]
    split = SftSplit()
    salt = split_salt(ids, split)
    assert salt is not None
    found = {split_of(i, split.model_copy(update={"salt": salt})) for i in ids}
    assert {"train", "val"} <= found
    assert split_salt(ids[:1], split) is None  # one video: no salt can do it
