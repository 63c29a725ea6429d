"""The ``aligned_pairs`` stage: the day's transcript segments and chat events -> one row per
segment with the chat it answers (accepted) or the reason it answers none (rejected).

Only ``transcripts`` rows with status ``ok`` and ``chat_events`` rows with status
``accepted`` (a time and a text) take part; the rejects of the upstream stay upstream. The
sentence encoder is loaded only when the embedding part is weighted and a segment has a
candidate; a random-init (tiny) encoder is not used unless ``embedding_with_tiny``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from style_pipeline.contracts.alignment import AlignedPairRecord, AlignmentSettings
from style_pipeline.speech.alignment import ChatMessage, Embed, Segment, align
from style_pipeline.storage.tables import polars_schema, records_to_frame

if TYPE_CHECKING:  # torch: imported only when the encoder is needed
    from style_pipeline.models.sentence import SentenceEncoder

PAIRS_SCHEMA = polars_schema(AlignedPairRecord)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignedPairsFacts:
    """What the ``aligned_pairs`` asset reports besides the table."""

    segments: int
    messages: int
    accepted: int
    candidates: int
    reasons: dict[str, int]
    embedding: str  # used | off (weight 0) | off (tiny encoder) | not needed
    seconds: float
    encoder: dict[str, str] = field(default_factory=dict)

    @property
    def segments_per_s(self) -> float:
        return self.segments / self.seconds if self.seconds > 0 else 0.0


def empty_pairs_table() -> pl.DataFrame:
    return pl.DataFrame(schema=PAIRS_SCHEMA)


def _rows(table: pl.DataFrame | None, status: str) -> list[dict]:
    if table is None or table.is_empty():
        return []
    if "status" in table.columns:
        table = table.filter(pl.col("status").cast(pl.String) == status)
    return table.to_dicts()


def segments_of(transcripts: pl.DataFrame | None) -> list[Segment]:
    """The ``ok`` segments of a ``transcripts`` table."""
    return [
        Segment(
            media_id=r["media_id"],
            segment_id=r["segment_id"],
            start_ms=int(r["start_ms"]),
            end_ms=int(r["end_ms"]),
            text=r["text"] or "",
            language=r.get("language") or "",
            avg_logprob=r.get("avg_logprob"),
            no_speech_prob=r.get("no_speech_prob"),
        )  # fmt: skip
        for r in _rows(transcripts, "ok")
    ]


def messages_of(chat_events: pl.DataFrame | None) -> list[ChatMessage]:
    """The ``accepted`` chat events with a time and a text."""
    return [
        ChatMessage(r["event_id"], r["media_id"], int(r["ts_ms"]), r["user_hash"] or "", r["text"])
        for r in _rows(chat_events, "accepted")
        if r.get("ts_ms") is not None and r.get("text")
    ]


def align_partition(
    transcripts: pl.DataFrame | None,
    chat_events: pl.DataFrame | None,
    cfg: AlignmentSettings,
    *,
    load_encoder: Callable[[], SentenceEncoder] | None = None,
) -> tuple[pl.DataFrame, AlignedPairsFacts]:
    """``aligned_pairs`` rows of the day and facts.

    ``load_encoder`` returns a ``SentenceEncoder`` (default: ``load_sentence_encoder`` of
    ``cfg.encoder``); it is called only when the embedding part is needed.
    """
    started = time.perf_counter()
    segments, chat = segments_of(transcripts), messages_of(chat_events)
    embed: Embed | None = None
    embedding, encoder_facts = "not needed", {}
    if cfg.weights.embedding <= 0:
        embedding = "off (weight 0)"
    elif segments and chat:
        encoder = (load_encoder or _default_loader(cfg))()
        encoder_facts = encoder.metadata()
        if encoder.profile_used == "tiny" and not cfg.embedding_with_tiny:
            embedding = "off (tiny encoder)"
            _log.warning("embedding part off: the sentence encoder is the random-init tiny one")
        else:
            embed, embedding = encoder.encode, "used"
    records, counts = align(segments, chat, cfg, embed)
    table = records_to_frame(records, AlignedPairRecord) if records else empty_pairs_table()
    facts = AlignedPairsFacts(
        segments=counts.segments,
        messages=counts.messages,
        accepted=counts.accepted,
        candidates=counts.candidates,
        reasons=dict(sorted(counts.reasons.items())),
        embedding=embedding,
        seconds=time.perf_counter() - started,
        encoder=encoder_facts,
    )
    return table, facts


def _default_loader(cfg: AlignmentSettings) -> Callable[[], SentenceEncoder]:
    def load() -> SentenceEncoder:
        from style_pipeline.models.sentence import load_sentence_encoder

        return load_sentence_encoder(cfg.encoder)

    return load
