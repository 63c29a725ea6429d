"""Speech and a chat log for the demo's sample video (``populate_drop``).

A short stream: viewers ask questions in the chat, the speaker answers each a moment
later. ``talk_plan`` lays the script out on the video's clock (each answer starts
``ANSWER_DELAY_S`` after its question, answers never overlap and end before the video
does); ``add_speech`` synthesizes the answers with espeak-ng (the Debian package;
``.ci/run`` installs it) into a mono 16-bit WAV and muxes it into the video as AAC;
``write_chat_log`` writes the chat as a TwitchDownloader-style log,
``[H:MM:SS] user: text`` (times from the start of the video: the video's clock), named
``<video stem>.chat.log`` so ingest files it with its video. A few chatter lines that
ask nothing are mixed in, as in a real chat.

Besides the cut video, ``populate_drop`` writes short speaking clips (``EXTRA_SCRIPTS``,
``demo_talk_<n>.mp4`` with their chat logs), so that the SFT split, which goes by source
video, can have videos in train and in val; ``split_salt`` picks a split salt that does
(the demo command sets it). The voice is espeak-ng's Klatt variant: an offline recognizer
(pocketsphinx) hears it better than the default voice.

Without espeak-ng ``espeak_binary`` is None: ``populate_drop`` then writes the video
without audio and no chat log, and says so (``SampleSet.speech_note``).
"""

from __future__ import annotations

import io
import math
import shutil
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from style_pipeline.contracts.alignment import SftSplit
from style_pipeline.llm.sft_dataset import split_of
from style_pipeline.media.ffmpeg_bin import ffmpeg_exe

ESPEAK_RATE_HZ = 22050  # espeak-ng's output rate
ANSWER_DELAY_S = 1.0  # from a question in the chat to the start of its spoken answer
GAP_S = 0.6  # silence after an answer before the next question
TAIL_S = 0.3  # an answer ends at least this long before the video does
# espeak-ng's Klatt synthesizer, a little slower than its default 175 wpm: pocketsphinx (the
# offline ASR backend) hears about half the words of the demo's answers (0.52 word recall
# over the scripts' answers) vs about a quarter with the default en-us voice at 165 wpm
VOICE = "en-us+klatt3"
WORDS_PER_MINUTE = 150
_TIMEOUT_S = 60

# (viewer, question in the chat, the speaker's answer)
Script = tuple[tuple[str, str, str], ...]
SCRIPT: Script = (
    ("pixel_fox", "what brush do you use for the clouds?",
     "Good question, for the clouds I use a soft round brush."),
    ("Marta_B", "how long did this painting take?",
     "Someone asked how long it took. About three hours."),
    ("nightowl42", "which colour palette is that?",
     "The palette is warm orange with a cool blue shadow."),
    ("dev_tom", "do you sketch first or paint directly?",
     "I always sketch first, then I paint over it."),
    ("lia", "what resolution do you export at?",
     "I export at two thousand pixels on the long side."),
    ("GuestUser", "can you show the reference photo?",
     "Chat says show the reference, so here it is."),
)  # fmt: skip
# The scripts of the demo's short extra speaking clips (demo_talk_1.mp4, demo_talk_2.mp4):
# more source videos, so the SFT split by video has more than one video to spread.
EXTRA_SCRIPTS: tuple[tuple[tuple[str, str, str], ...], ...] = (
    (
        ("sam_k", "what music do you play on stream?",
         "Good question, I play quiet piano music on stream."),
        ("zoe", "when is the next stream?", "The next stream is on Friday at noon."),
    ),
    (
        ("mike_r", "what tablet do you draw on?",
         "Someone asked about my tablet. I draw on a small black tablet."),
        ("ana", "do you sell your prints?", "Yes, I sell my prints in my shop."),
    ),
)  # fmt: skip
# (seconds after the previous answer ends, viewer, text): chatter that asks nothing
CHATTER: tuple[tuple[str, str], ...] = (
    ("pixel_fox", "hi everyone"),
    ("dev_tom", "lol"),
    ("Marta_B", "nice colours"),
)


@dataclass(frozen=True)
class ChatMessage:
    at_s: int  # whole seconds on the video clock (the log's [H:MM:SS] resolution)
    user: str
    text: str
    question: bool  # asks something the speaker answers


@dataclass(frozen=True)
class SpokenLine:
    start_s: float
    end_s: float
    text: str
    answers: str  # the chat question it answers


@dataclass(frozen=True)
class TalkPlan:
    chat: list[ChatMessage]
    speech: list[SpokenLine]


def espeak_binary() -> str | None:
    """espeak-ng (or espeak) on PATH, else None."""
    return shutil.which("espeak-ng") or shutil.which("espeak")


def synthesize(text: str, binary: str) -> np.ndarray:
    """``text`` spoken by espeak-ng: int16 mono samples at ``ESPEAK_RATE_HZ``."""
    done = subprocess.run(
        [binary, "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "--stdout", text],
        capture_output=True,
        check=False,
        timeout=_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{binary} failed: {done.stderr.decode(errors='replace')[-500:]}")
    data = done.stdout
    # --stdout writes a WAV whose sizes say "unknown" (0x7fffffff): read the PCM directly
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise RuntimeError(f"{binary} wrote no WAV")
    pos = 12
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], int.from_bytes(data[pos + 4 : pos + 8], "little")
        if chunk == b"fmt ":
            rate = int.from_bytes(data[pos + 12 : pos + 16], "little")
            bits = int.from_bytes(data[pos + 22 : pos + 24], "little")
            if rate != ESPEAK_RATE_HZ or bits != 16:
                raise RuntimeError(f"{binary} wrote {rate} Hz {bits}-bit audio")
        if chunk == b"data":
            pcm = data[pos + 8 :]
            return np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.int16)
        pos += 8 + size
    raise RuntimeError(f"{binary} wrote a WAV without data")


def talk_plan(video_seconds: float, durations: list[float], script: Script = SCRIPT) -> TalkPlan:
    """The chat and the spoken answers on the video clock, for answers of these
    durations (``durations[i]``: ``script[i]``'s answer); the answers that fit."""
    chat: list[ChatMessage] = []
    speech: list[SpokenLine] = []
    t = 0.5
    for i, ((user, question, answer), length) in enumerate(zip(script, durations, strict=False)):
        asked = math.ceil(t)
        start = asked + ANSWER_DELAY_S
        if start + length > video_seconds - TAIL_S:
            break
        if i < len(CHATTER) and asked >= 1:  # chatter a second before the question
            chat.append(ChatMessage(asked - 1, CHATTER[i][0], CHATTER[i][1], question=False))
        chat.append(ChatMessage(asked, user, question, question=True))
        speech.append(SpokenLine(start, start + length, answer, question))
        t = start + length + GAP_S
    return TalkPlan(chat, speech)


def talk_seconds(durations: list[float]) -> float:
    """The shortest whole-second video that ``talk_plan`` fits every answer into."""
    t = 0.5
    for length in durations:
        t = math.ceil(t) + ANSWER_DELAY_S + length + GAP_S
    return float(math.ceil(t - GAP_S + TAIL_S + 0.5))


def split_salt(media_ids: list[str], split: SftSplit, tries: int = 200) -> str | None:
    """A split salt that puts at least one of these source videos in train and one in
    val (the configured salt when it already does), or None when none of ``tries`` does:
    the demo's few speaking videos then give the LLM adapter a train and a val split."""
    if len(media_ids) < 2 or split.train <= 0 or split.val <= 0:
        return None
    for salt in [split.salt, *(f"demo-{n}" for n in range(tries))]:
        trial = split.model_copy(update={"salt": salt})
        found = {split_of(media_id, trial) for media_id in media_ids}
        if {"train", "val"} <= found:
            return salt
    return None


def _hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def chat_log_text(plan: TalkPlan) -> str:
    """The chat as a TwitchDownloader text log (``[H:MM:SS] user: text``)."""
    return "".join(f"[{_hms(m.at_s)}] {m.user}: {m.text}\n" for m in plan.chat)


def write_chat_log(video: Path, plan: TalkPlan) -> Path:
    """``<video stem>.chat.log`` beside the video."""
    path = video.with_name(f"{video.stem}.chat.log")
    path.write_text(chat_log_text(plan), encoding="utf-8")
    return path


def _wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(ESPEAK_RATE_HZ)
        out.writeframes(samples.astype("<i2").tobytes())
    return buffer.getvalue()


def voices(script: Script, binary: str) -> list[np.ndarray]:
    """The script's answers spoken by espeak-ng, in order."""
    return [synthesize(answer, binary) for _, _, answer in script]


def add_speech(
    video: Path,
    video_seconds: float,
    binary: str,
    script: Script = SCRIPT,
    spoken: list[np.ndarray] | None = None,
) -> TalkPlan:
    """Synthesize the script's answers that fit into ``video`` (``spoken``: already
    synthesized) and mux them in (AAC, mono); the video stream is copied. Returns the
    plan (write its chat log next)."""
    voices_ = spoken if spoken is not None else voices(script, binary)
    plan = talk_plan(video_seconds, [len(v) / ESPEAK_RATE_HZ for v in voices_], script)
    track = np.zeros(round(video_seconds * ESPEAK_RATE_HZ), dtype=np.int16)
    for line, voice in zip(plan.speech, voices_, strict=False):
        at = round(line.start_s * ESPEAK_RATE_HZ)
        track[at : at + len(voice)] = voice[: len(track) - at]
    muxed = video.with_name(f".{video.stem}.speech{video.suffix}")
    cmd = [
        ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
        "-i", str(video), "-f", "wav", "-i", "pipe:0",
        "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
        "-c:a", "aac", "-b:a", "64k", "-ac", "1", "-ar", str(ESPEAK_RATE_HZ),
        "-movflags", "+faststart", "-fflags", "+bitexact", "-flags:a", "+bitexact",
        str(muxed),
    ]  # fmt: skip
    done = subprocess.run(
        cmd, input=_wav_bytes(track), capture_output=True, check=False, timeout=_TIMEOUT_S
    )
    if done.returncode != 0:
        muxed.unlink(missing_ok=True)
        raise RuntimeError(f"ffmpeg failed muxing speech into {video}: {done.stderr[-2000:]!r}")
    muxed.replace(video)
    return plan
