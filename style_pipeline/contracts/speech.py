"""Contracts of the speech group: ``audio`` and ``transcripts`` rows, the ``speech:`` section.

``audio``: one row per accepted video of the day, its 16 kHz mono FLAC (content-addressed)
with loudness and silence, or the reason it has none. ``transcripts``: one row per Whisper
segment with word timings in milliseconds, and one ``rejected`` row per audio that could
not be transcribed.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from style_pipeline.contracts.models import DevicePreference, Precision, Profile
from style_pipeline.contracts.sections import Section
from style_pipeline.paths import DEFAULT_MODEL_DIR, resolve_local

SAMPLE_RATE = 16_000  # what Whisper's feature extractor expects; every FLAC is resampled to it
WHISPER_SMALL_ID = "openai/whisper-small"
TranscriptionBackend = Literal["transformers", "faster_whisper", "pocketsphinx", "auto"]


class SpeechStatus(StrEnum):
    OK = "ok"
    REJECTED = "rejected"


class AudioRejectReason(StrEnum):
    """Why a video has no usable audio. Stable codes: dashboards and tests key on them."""

    NO_AUDIO = "no_audio"  # the video has no audio stream
    DECODE_FAILED = "decode_failed"  # ffmpeg could not decode the audio stream
    EMPTY_AUDIO = "empty_audio"  # an audio stream without a single sample
    TOO_LONG = "too_long"  # longer than speech.audio.max_duration_s
    TIMEOUT = "timeout"  # ffmpeg ran past speech.audio.timeout_s


class TranscriptRejectReason(StrEnum):
    """Why an ``ok`` audio row got no segments."""

    AUDIO_UNREADABLE = "audio_unreadable"  # the stored FLAC is missing or does not decode
    TRANSCRIPTION_FAILED = "transcription_failed"  # the model raised on this audio
    LANGUAGE_UNSUPPORTED = "language_unsupported"  # pocketsphinx (English only), other language


class AudioRecord(BaseModel):
    """One accepted video of the day: its audio, measured, or why it has none."""

    model_config = ConfigDict(extra="forbid")

    media_id: str = Field(description="sha256 of the original video (raw_media)")
    source_name: str = Field(description="path of the video relative to the drop root")
    sha256: str | None = Field(None, description="sha256 of the FLAC bytes (None: rejected)")
    audio_key: str | None = Field(None, description="audio/objects/<sha[:2]>/<sha>.flac")
    duration_ms: int | None = None
    sample_rate: int | None = Field(None, description="16000 for every ok row")
    channels: int | None = Field(None, description="1 for every ok row (downmixed)")
    integrated_lufs: float | None = Field(None, description="EBU R128 integrated loudness")
    loudness_range_lu: float | None = Field(None, description="EBU R128 loudness range (LRA)")
    true_peak_dbtp: float | None = Field(None, description="true peak, dBTP (4x oversampled)")
    silence_ratio: float | None = Field(None, description="share of the duration under the "
                                        "silence threshold (speech.audio.silence_*)")  # fmt: skip
    status: SpeechStatus
    reason: AudioRejectReason | None = None
    detail: str | None = Field(None, description="what ffmpeg said, for rejected rows")
    derivation_key: str = Field(description="sha256 of media_id + the audio config fingerprint")


class WordTiming(BaseModel):
    """One word of a segment: its text (with its leading space) and timing."""

    model_config = ConfigDict(extra="forbid")

    word: str
    start_ms: int
    end_ms: int
    probability: float


class TranscriptSegment(BaseModel):
    """One Whisper segment (``status`` ok), or one ``rejected`` row per untranscribed audio."""

    model_config = ConfigDict(extra="forbid")

    media_id: str
    segment_id: str = Field(description="sha256 of audio sha256 + model + config + index")
    start_ms: int = Field(description="on the video clock, like chat_events.ts_ms")
    end_ms: int
    text: str
    language: str = Field(description="ISO 639-1 code detected (or speech.transcription."
                          "language when set)")  # fmt: skip
    avg_logprob: float | None = Field(
        None,
        description="mean log-probability of its tokens "
        "(pocketsphinx: mean log posterior of its words)",
    )
    no_speech_prob: float | None = Field(None, description="P(<|nospeech|>) of its window "
                                         "(pocketsphinx: share of its span heard as silence "
                                         "or noise)")  # fmt: skip
    words: list[WordTiming] = Field(default_factory=list)
    model: str = Field(description="model id (a tiny model: name@sha256:<weights digest>)")
    backend: str = Field(description="transformers | faster_whisper | pocketsphinx")
    audio_sha256: str | None = Field(None, description="the FLAC the segment was heard in")
    status: SpeechStatus = SpeechStatus.OK
    reason: TranscriptRejectReason | None = None
    detail: str | None = None


class AudioSettings(Section):
    """``speech.audio``: extraction and analysis of each video's audio."""

    silence_noise_db: float = Field(
        -35.0, le=0, description="silencedetect threshold (dBFS): quieter is silence"
    )
    silence_min_s: float = Field(0.3, gt=0, description="shortest pause counted as silence")
    max_duration_s: float = Field(6 * 3600.0, gt=0, description="longer audio: too_long")
    timeout_s: float = Field(900.0, gt=0, description="per ffmpeg run (extraction, analysis)")


class TinyWhisperArch(Section):
    """Shape of the random-init test Whisper (tens of thousands of parameters)."""

    name: str = Field("tiny-whisper", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    num_mel_bins: int = Field(80, description="80 like whisper tiny..medium (128: large-v3)")
    d_model: int = Field(32, gt=0)
    encoder_layers: int = Field(2, gt=0)
    decoder_layers: int = Field(2, gt=0)
    attention_heads: int = Field(2, gt=0)
    ffn_dim: int = Field(64, gt=0)
    max_target_positions: int = Field(448, ge=32)
    seed: int = 0


class WhisperModelConfig(Section):
    """How the Whisper model is obtained: profile, weights, cache, device and precision."""

    profile: Profile = "auto"
    pretrained: str = Field(WHISPER_SMALL_ID, description="hub id (cached) or local directory")
    cache_dir: str = Field(DEFAULT_MODEL_DIR, description="where tiny models are saved")
    hf_cache_dir: str | None = Field(None, description="Hugging Face cache (None: default)")
    device: DevicePreference = "auto"
    precision: Precision = Field("fp32", description="fp16/bf16 on CUDA; CPU runs fp32 or bf16")
    tiny: TinyWhisperArch = TinyWhisperArch()

    def cache_path(self) -> Path:
        return resolve_local(self.cache_dir)


class TranscriptionSettings(Section):
    """``speech.transcription``: Whisper over every ok audio row."""

    backend: TranscriptionBackend = Field(
        "auto",
        description="transformers; faster_whisper (CTranslate2, needs `pip install "
        "faster-whisper`); pocketsphinx (English, its model inside the wheel); auto: "
        "transformers when pretrained Whisper is on disk (or model.profile is tiny), else "
        "faster_whisper when installed, else pocketsphinx when installed (language null/en), "
        "else the tiny Whisper with a warning",
    )
    model: WhisperModelConfig = WhisperModelConfig()
    language: str | None = Field(None, description="ISO 639-1 code; None: detected per audio")
    task: Literal["transcribe", "translate"] = "transcribe"
    chunk_s: float = Field(30.0, gt=1, le=30, description="window length (Whisper sees 30 s)")
    batch_size: int = Field(8, ge=1, description="windows per generate call")
    num_beams: int = Field(1, ge=1)
    max_new_tokens: int = Field(220, ge=8, le=440)
    word_timestamps: bool = True
    faster_whisper_model: str = Field(
        "small", description="faster-whisper size or CTranslate2 model dir/id"
    )
    faster_whisper_compute_type: str = Field("int8", description="CTranslate2 compute type")
    pocketsphinx_pause_s: float = Field(
        0.5, gt=0, description="pocketsphinx: silence at least this long ends a segment"
    )


class SpeechSettings(Section):
    """``speech:`` section: the audio and transcripts assets."""

    enabled: bool = Field(True, description="false: audio and transcripts are empty tables")
    audio: AudioSettings = AudioSettings()
    transcription: TranscriptionSettings = TranscriptionSettings()
