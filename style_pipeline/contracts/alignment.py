"""Alignment and SFT contracts: the ``alignment:`` and ``sft:`` sections, the sentence encoder's
config, the rows of ``aligned_pairs`` and of the SFT table, and the ``sft_dataset`` document.

``aligned_pairs`` holds one row per speech segment of the day: the chat message(s) it answers
(the prompt), the segment's text (the response), the score and its parts, and
``status`` accepted | rejected with a reason code. ``sft_dataset`` turns the accepted pairs
into deduplicated, filtered train/val/test JSONL files in chat format, split by source video.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from style_pipeline.contracts.models import DevicePreference, Profile
from style_pipeline.paths import DEFAULT_MODEL_DIR, resolve_local

MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"
Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


class PairStatus(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class SftStatus(StrEnum):
    KEPT = "kept"
    REJECTED = "rejected"


class SplitName(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


# Reason codes of ``aligned_pairs`` (one per rejected row; '' when accepted).
PAIR_REASONS = (
    "empty_text",  # the segment holds no words
    "no_speech",  # no_speech_prob above alignment.max_no_speech_prob
    "low_confidence",  # avg_logprob below alignment.min_avg_logprob
    "response_too_short",  # fewer words than alignment.min_response_words
    "no_chat_in_window",  # no chat message in the window before the segment
    "score_below_threshold",  # the best candidate scored under alignment.min_score
    "no_content_match",  # no shared word/cue/close embedding, or a statement without a cue
    "chat_already_paired",  # its best message answered by a higher-scoring segment
)
# Reason codes of the SFT table (one per rejected row; '' when kept).
SFT_REASONS = (
    "prompt_too_short",
    "prompt_too_long",
    "response_too_short",
    "response_too_long",
    "language",  # prompt or response language not in sft.languages
    "spam",  # links, character floods, one-token shouting
    "repetition",  # too few distinct words in the response
    "profanity",  # a word of sft.profanity
    "duplicate_exact",
    "duplicate_near",  # MinHash Jaccard over sft.near_dup_threshold with a kept row
)

DEFAULT_CUES = (
    r"\bgood question\b",
    r"\bgreat question\b",
    r"\b(?:someone|somebody|a few people|people|chat|they|you)(?: guys)? (?:asked|asks|asking)\b",
    r"\bchat (?:says|said|is saying|wants)\b",
    r"\bto answer\b",
    r"\bthe question (?:is|was)\b",
    r"@\w+",
    r"\bthanks? (?:for|you for) (?:asking|the question)\b",
    r"\b(?:in|reading) (?:the )?chat\b",
)
DEFAULT_PROFANITY = ("fuck", "shit", "cunt", "bitch", "asshole", "motherfucker", "dickhead")


class TinyBertArch(BaseModel):
    """Shape of the random-init test sentence encoder (a BERT of a few thousand parameters)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("tiny-bert", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    hidden: int = Field(32, gt=0)
    layers: int = Field(2, gt=0)
    heads: int = Field(2, gt=0)
    intermediate: int = Field(64, gt=0)
    max_positions: int = Field(128, ge=16)
    seed: int = 0


class SentenceEncoderConfig(BaseModel):
    """How the sentence encoder (transformers AutoModel + mean pooling) is obtained."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    profile: Profile = "auto"
    pretrained: str = Field(MINILM_ID, description="hub id (cached) or local directory")
    cache_dir: str = Field(DEFAULT_MODEL_DIR, description="where tiny models are saved")
    hf_cache_dir: str | None = Field(None, description="Hugging Face cache (None: default)")
    device: DevicePreference = "auto"
    batch_size: int = Field(64, ge=1, description="texts per forward pass")
    max_length: int = Field(128, ge=8, description="tokens per text (longer ones are cut)")
    tiny: TinyBertArch = TinyBertArch()

    def cache_path(self) -> Path:
        return resolve_local(self.cache_dir)


class ScoreWeights(BaseModel):
    """Weights of the score's parts: each part is in [0, 1] and the score is their weighted
    mean over the parts in use (the embedding part is left out when the model is not used)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time: float = Field(0.25, ge=0, description="closeness of the message to the segment start")
    lexical: float = Field(0.35, ge=0, description="message words the answer repeats")
    embedding: float = Field(0.2, ge=0, description="sentence encoder cosine (0 skips the model)")
    cue: float = Field(0.1, ge=0, description="the speaker addresses chat (alignment.cues)")
    question: float = Field(0.1, ge=0, description="the message is a question")


class AlignmentSettings(BaseModel):
    """``alignment:`` section: chat messages before a speech segment -> one (prompt, response)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    window_ms: int = Field(45_000, gt=0, description="chat up to this long before a segment")
    after_start_ms: int = Field(
        1_000, ge=0, description="chat this long after the segment start still counts (lag)"
    )
    time_decay_ms: float = Field(
        30_000, gt=0, description="time part = exp(-gap / time_decay_ms), gap to segment start"
    )
    weights: ScoreWeights = ScoreWeights()
    min_score: float = Field(0.45, ge=0, le=1, description="best candidates below are rejected")
    require_content_match: bool = Field(
        True,
        description="a pair needs a shared word, a cue or an embedding part of at least "
        "min_embedding_match: closeness in time alone never makes a pair",
    )
    min_embedding_match: float = Field(0.6, ge=0, le=1)
    statements_need_cue: bool = Field(
        True,
        description="a message that is not a question pairs only with speech that addresses "
        "chat (a cue): reactions like 'so good' never become prompts",
    )
    embedding_with_tiny: bool = Field(
        False,
        description="use the embedding part even when the encoder is the random-init tiny "
        "one (its cosines mean nothing: off except in tests)",
    )
    join_gap_ms: int = Field(
        4_000,
        ge=0,
        description="the same user's messages this close to the chosen one join the prompt",
    )
    max_prompt_messages: int = Field(3, ge=1, description="messages joined into one prompt")
    min_response_words: int = Field(3, ge=1)
    max_no_speech_prob: float = Field(0.6, ge=0, le=1)
    min_avg_logprob: float = Field(-1.5, description="Whisper's usual hallucination bound is -1.0")
    cues: tuple[str, ...] = Field(
        DEFAULT_CUES, description="regexes (case-insensitive) in the speech that address chat"
    )
    encoder: SentenceEncoderConfig = SentenceEncoderConfig()

    def fingerprint(self) -> str:
        """Content key of everything that changes the pairs (the device excluded)."""
        data = self.model_dump(mode="json")
        data["encoder"].pop("device", None)
        data["encoder"].pop("batch_size", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class SftSplit(BaseModel):
    """Shares of the source videos in each split (the hash of media_id decides)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    train: float = Field(0.8, ge=0, le=1)
    val: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    salt: str = Field("sft-split-v1", description="changing it reshuffles the videos")

    @model_validator(mode="after")
    def _sum_to_one(self) -> SftSplit:
        if abs(self.train + self.val + self.test - 1.0) > 1e-6:
            raise ValueError(f"split shares sum to {self.train + self.val + self.test}, not 1")
        return self


class SftSettings(BaseModel):
    """``sft:`` section: accepted pairs -> deduplicated, filtered chat-format JSONL splits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_prompt_chars: int = Field(4, ge=0)
    max_prompt_chars: int = Field(1_000, ge=1)
    min_response_words: int = Field(3, ge=0)
    max_response_words: int = Field(400, ge=1)
    languages: tuple[str, ...] = Field(
        ("en",), description="ISO 639-1 codes kept (empty: any language)"
    )
    language_min_chars: int = Field(
        25, ge=0, description="shorter prompts are not language-checked (langdetect guesses)"
    )
    max_repeat_char_run: int = Field(6, ge=2, description="'soooooo': a run longer is spam")
    min_distinct_word_ratio: float = Field(
        0.3, ge=0, le=1, description="response distinct words / words below: repetition"
    )
    profanity: tuple[str, ...] = Field(
        DEFAULT_PROFANITY, description="words (and their -s/-ing/-ed/-er forms) rejected"
    )
    near_dup_threshold: float = Field(0.8, gt=0, le=1, description="MinHash Jaccard estimate")
    minhash_perm: int = Field(128, ge=16)
    shingle_chars: int = Field(5, ge=2)
    system_prompt: str | None = Field(None, description="a system message before each pair")
    window_days: int = Field(
        7,
        ge=1,
        description="aligned_pairs of this many days (the day and the ones before) make the "
        "day's dataset, deduplicated and split together (read when the code location loads)",
    )
    split: SftSplit = SftSplit()


class AlignedPairRecord(BaseModel):
    """One row of ``aligned_pairs``: a speech segment and the chat it answers (or why not)."""

    model_config = ConfigDict(extra="forbid")

    pair_id: str = Field(description="sha256[:16] of media_id, segment_id and chat event ids")
    media_id: str
    segment_id: str
    prompt: str = Field(description="chat text, several messages joined by newlines ('': none)")
    response: str = Field(description="the segment's speech text")
    language: str = Field(description="the transcript's language")
    chat_start_ms: int | None = None
    chat_end_ms: int | None = None
    speech_start_ms: int
    speech_end_ms: int
    score: float = Field(description="weighted sum of the parts (0 with no candidate)")
    time_score: float = 0.0
    lexical_score: float = 0.0
    embedding_score: float = 0.0
    cue_score: float = 0.0
    question_score: float = 0.0
    candidates: int = Field(0, description="chat messages in the segment's window")
    chat_event_ids: list[str] = Field(default_factory=list)
    status: PairStatus
    reason: str = Field("", description="a PAIR_REASONS code when rejected")
    config_hash: str = Field(description="alignment settings fingerprint")


class SftRecord(BaseModel):
    """One row of the SFT table (``sft_dataset/<day>/rows.parquet``)."""

    model_config = ConfigDict(extra="forbid")

    pair_id: str
    media_id: str
    split: SplitName
    prompt: str
    response: str
    status: SftStatus
    reason: str = Field("", description="an SFT_REASONS code when rejected")
    duplicate_of: str | None = Field(None, description="pair_id of the kept row (duplicates)")


class SftDatasetDocument(BaseModel):
    """``sft_dataset/<day>.json``: where the day's SFT files are and what they hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    snapshot_id: str = Field(description="sha256 over rows + chat template + split manifest")
    prefix: str = Field(description="store folder sft_dataset/<day>/")
    files: dict[str, str] = Field(description="train|val|test|rows|manifest -> store key")
    sha256: dict[str, str] = Field(description="the same names -> sha256 of the file")
    counts: dict[str, int] = Field(description="kept rows per split")
    videos: dict[str, int] = Field(description="source videos per split")
    rejected: dict[str, int] = Field(description="rejected rows per reason")
    pairs_in: int = Field(description="accepted aligned pairs read")
    partitions: list[str] = Field(
        default_factory=list, description="days of the window that held aligned pairs"
    )
    template: str = Field(description="the chat-format template hashed into snapshot_id")
    config_hash: str
