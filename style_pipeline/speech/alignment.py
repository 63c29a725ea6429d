"""Chat-to-speech alignment: which chat message(s) a speech segment answers.

For each speech segment the chat messages of the same video in a window before its start
(``alignment.window_ms``, plus ``after_start_ms`` of chat lag) are candidates. Each is
scored by parts in [0, 1]:

- time: ``exp(-gap / time_decay_ms)``, the gap from the message to the segment start;
- lexical: how much of the message's content words the speech repeats (light stemming);
- embedding: the cosine of the two texts' sentence embeddings (when an encoder is given);
- cue: the speech addresses chat ("good question", "someone asked", "@name", ...);
- question: the message is a question.

The score is the weighted mean of the parts in use. A segment keeps its best candidate
when it scores ``min_score`` or more and (``require_content_match``) shares a word, a cue or
a close embedding with it: closeness in time alone never makes a pair; a message that is
not a question needs the speech to address chat (``statements_need_cue``: "chat says the
tower is wonky"). A chat message
answers one segment at most: segments are served best score first, and one whose
candidates are all taken is rejected (``chat_already_paired``). The same user's messages
within ``join_gap_ms`` of the chosen one join the prompt (a question typed in pieces).

:func:`nearest_pairs` is the baseline the benchmark compares with: the last message
before each segment.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from style_pipeline.contracts.alignment import AlignedPairRecord, AlignmentSettings

Embed = Callable[[Sequence[str]], np.ndarray]  # texts -> unit vectors, one row each

_WORD = re.compile(r"[a-z0-9][a-z0-9']*")
_QUESTION_START = re.compile(
    r"^\s*(?:@\w+\s+)?(?:what|why|how|when|where|who|which|whats|what's|can|could|would|"
    r"will|do|does|did|is|are|was|were|should|have|has|any|thoughts)\b",
    re.IGNORECASE,
)
STOPWORDS = frozenset(
    """a an the and or but if then so of to in on at by for with from about into over
    i me my you your yours he she it its we our they them their this that these those is
    are was were be been being am do does did have has had having can could would should
    will shall may might must what why how when where who which whom whose there here
    not no yes just very really also too as than like get got go going gonna wanna
    lol lmao omg pls please hey hi hello guys chat ok okay yeah yep um uh oh well
    s t don't it's i'm you're that's what's im dont thats whats""".split()
    # chat reactions: they say how a viewer feels, not what they ask about
    + """good nice great cool sick clean insane crazy wow lets gg true based mid love
    looking looks look gooo""".split()
)


@dataclass(frozen=True)
class Segment:
    """A speech segment (``transcripts`` row); times on the video clock, ms."""

    media_id: str
    segment_id: str
    start_ms: int
    end_ms: int
    text: str
    language: str = ""
    avg_logprob: float | None = None
    no_speech_prob: float | None = None


@dataclass(frozen=True)
class ChatMessage:
    """A chat message (``chat_events`` row); ``ts_ms`` on the video clock."""

    event_id: str
    media_id: str
    ts_ms: int
    user_hash: str
    text: str


@dataclass(frozen=True)
class Parts:
    time: float
    lexical: float
    embedding: float
    cue: float
    question: float
    score: float

    @property
    def content_match(self) -> bool:
        return self.lexical > 0 or self.cue > 0


@dataclass
class AlignFacts:
    """Counts the stage reports besides the table."""

    segments: int = 0
    messages: int = 0
    accepted: int = 0
    candidates: int = 0
    embedded_texts: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@functools.lru_cache(maxsize=65_536)  # a message is scored against every segment after it
def content_words(text: str) -> frozenset[str]:
    """Lower-cased words minus stop words, plural/possessive ``s`` and ``ing`` cut."""
    out = set()
    for word in _WORD.findall(text.lower()):
        word = word.removesuffix("'s").strip("'")
        if not word or word in STOPWORDS:
            continue
        if len(word) > 5 and word.endswith("ing"):
            word = word[:-3]
        elif len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        out.add(word)
    return frozenset(out)


def lexical_part(chat: frozenset[str], speech: frozenset[str]) -> float:
    """How much of the message the speech repeats: the share of its content words, or
    ``1 - 0.6 ** shared`` when higher (one shared word of a long question counts 0.4).
    """
    if not chat:
        return 0.0
    shared = len(chat & speech)
    return max(shared / len(chat), 1.0 - 0.6**shared)


def is_question(text: str) -> bool:
    return "?" in text or bool(_QUESTION_START.match(text))


def compile_cues(patterns: Iterable[str]) -> list[re.Pattern[str]]:
    return [re.compile(p, re.IGNORECASE) for p in patterns]


def has_cue(text: str, cues: Sequence[re.Pattern[str]]) -> bool:
    return any(c.search(text) for c in cues)


def pair_id(media_id: str, segment_id: str, event_ids: Sequence[str]) -> str:
    payload = "\x1f".join([media_id, segment_id, *event_ids])
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _segment_reason(seg: Segment, cfg: AlignmentSettings) -> str:
    words = _WORD.findall(seg.text.lower())
    if not words:
        return "empty_text"
    if seg.no_speech_prob is not None and seg.no_speech_prob > cfg.max_no_speech_prob:
        return "no_speech"
    if seg.avg_logprob is not None and seg.avg_logprob < cfg.min_avg_logprob:
        return "low_confidence"
    if len(words) < cfg.min_response_words:
        return "response_too_short"
    return ""


def _window(
    seg: Segment, chat: Sequence[ChatMessage], times: np.ndarray, cfg: AlignmentSettings
) -> list[int]:
    lo = int(np.searchsorted(times, seg.start_ms - cfg.window_ms, side="left"))
    hi = int(np.searchsorted(times, seg.start_ms + cfg.after_start_ms, side="right"))
    return list(range(lo, hi))


def _embeddings(texts: Iterable[str], embed: Embed | None) -> dict[str, np.ndarray]:
    if embed is None:
        return {}
    unique = sorted(set(texts))
    vectors = embed(unique)
    return {text: vectors[i] for i, text in enumerate(unique)}


def align(
    segments: Sequence[Segment],
    chat: Sequence[ChatMessage],
    cfg: AlignmentSettings,
    embed: Embed | None = None,
) -> tuple[list[AlignedPairRecord], AlignFacts]:
    """One ``aligned_pairs`` row per segment (input order kept), and counts.

    ``embed``: the sentence encoder's ``encode`` (None: no embedding part).
    """
    w = cfg.weights
    use_embedding = embed is not None and w.embedding > 0
    total_weight = w.time + w.lexical + w.cue + w.question + (w.embedding if use_embedding else 0)
    total_weight = total_weight or 1.0
    cues = compile_cues(cfg.cues)
    config_hash = cfg.fingerprint()
    by_media: dict[str, list[ChatMessage]] = defaultdict(list)
    for msg in chat:
        by_media[msg.media_id].append(msg)
    for msgs in by_media.values():
        msgs.sort(key=lambda m: (m.ts_ms, m.event_id))
    times = {m: np.array([x.ts_ms for x in msgs], dtype=np.int64) for m, msgs in by_media.items()}

    reasons = [_segment_reason(seg, cfg) for seg in segments]
    windows: list[list[int]] = []
    for seg, reason in zip(segments, reasons, strict=True):
        msgs = by_media.get(seg.media_id, [])
        windows.append(_window(seg, msgs, times[seg.media_id], cfg) if msgs and not reason else [])
    vectors: dict[str, np.ndarray] = {}
    if use_embedding:
        texts = [s.text for s, win in zip(segments, windows, strict=True) if win]
        texts += [by_media[s.media_id][i].text for s, win in zip(segments, windows, strict=True)
                  for i in win]  # fmt: skip
        vectors = _embeddings(texts, embed)

    # scored[k]: (parts, index in by_media[media]) of segment k's candidates, best first
    scored: list[list[tuple[Parts, int]]] = []
    for seg, win in zip(segments, windows, strict=True):
        speech_words = content_words(seg.text)
        cue = 1.0 if has_cue(seg.text, cues) else 0.0
        msgs = by_media.get(seg.media_id, [])
        rows = []
        for i in win:
            msg = msgs[i]
            gap = max(0, seg.start_ms - msg.ts_ms)
            t = math.exp(-gap / cfg.time_decay_ms)
            lex = lexical_part(content_words(msg.text), speech_words)
            emb = 0.0
            if use_embedding:
                emb = max(0.0, float(np.dot(vectors[msg.text], vectors[seg.text])))
            q = 1.0 if is_question(msg.text) else 0.0
            total = w.time * t + w.lexical * lex + w.cue * cue + w.question * q
            total += w.embedding * emb if use_embedding else 0.0
            rows.append((Parts(t, lex, emb, cue, q, total / total_weight), i))
        rows.sort(key=lambda r: (-r[0].score, -msgs[r[1]].ts_ms))
        scored.append(rows)

    def qualifies(parts: Parts) -> bool:
        if parts.score < cfg.min_score:
            return False
        if cfg.statements_need_cue and not parts.question and not parts.cue:
            return False
        if not cfg.require_content_match:
            return True
        return parts.content_match or (use_embedding and parts.embedding >= cfg.min_embedding_match)

    # Segments with the best candidates choose first; a message answers one segment at most.
    claimed: set[tuple[str, int]] = set()
    chosen: dict[int, tuple[Parts, list[int]]] = {}
    order = sorted(
        (k for k, rows in enumerate(scored) if rows),
        key=lambda k: (-scored[k][0][0].score, segments[k].start_ms),
    )
    for k in order:
        seg = segments[k]
        msgs = by_media[seg.media_id]
        ok = [(p, i) for p, i in scored[k] if qualifies(p)]
        if not ok:
            low = scored[k][0][0].score < cfg.min_score
            reasons[k] = "score_below_threshold" if low else "no_content_match"
            continue
        free = [(p, i) for p, i in ok if (seg.media_id, i) not in claimed]
        if not free:
            reasons[k] = "chat_already_paired"
            continue
        best, i = free[0]
        joined = _join(msgs, i, seg, cfg, claimed)
        claimed.update((seg.media_id, j) for j in joined)
        chosen[k] = (best, joined)

    records = []
    facts = AlignFacts(segments=len(segments), messages=len(chat), embedded_texts=len(vectors))
    for k, seg in enumerate(segments):
        msgs = by_media.get(seg.media_id, [])
        facts.candidates += len(scored[k])
        parts: Parts | None = None
        if k in chosen:
            parts, idx = chosen[k]
            status, reason = "accepted", ""
        else:
            reason = reasons[k] or "no_chat_in_window"
            status = "rejected"
            idx = [scored[k][0][1]] if scored[k] else []
            parts = scored[k][0][0] if scored[k] else None
        picked = [msgs[j] for j in idx]
        ids = [m.event_id for m in picked]
        records.append(
            AlignedPairRecord(
                pair_id=pair_id(seg.media_id, seg.segment_id, ids),
                media_id=seg.media_id,
                segment_id=seg.segment_id,
                prompt="\n".join(m.text.strip() for m in picked),
                response=seg.text.strip(),
                language=seg.language,
                chat_start_ms=picked[0].ts_ms if picked else None,
                chat_end_ms=picked[-1].ts_ms if picked else None,
                speech_start_ms=seg.start_ms,
                speech_end_ms=seg.end_ms,
                score=round(parts.score, 6) if parts else 0.0,
                time_score=round(parts.time, 6) if parts else 0.0,
                lexical_score=round(parts.lexical, 6) if parts else 0.0,
                embedding_score=round(parts.embedding, 6) if parts else 0.0,
                cue_score=parts.cue if parts else 0.0,
                question_score=parts.question if parts else 0.0,
                candidates=len(scored[k]),
                chat_event_ids=ids,
                status=status,
                reason=reason,
                config_hash=config_hash,
            )
        )
        if status == "accepted":
            facts.accepted += 1
        else:
            facts.reasons[reason] = facts.reasons.get(reason, 0) + 1
    return records, facts


def _join(
    msgs: Sequence[ChatMessage],
    i: int,
    seg: Segment,
    cfg: AlignmentSettings,
    claimed: set[tuple[str, int]],
) -> list[int]:
    """``i`` plus the same user's unclaimed messages within ``join_gap_ms``, in time order."""
    picked = [i]
    user = msgs[i].user_hash
    limit = seg.start_ms + cfg.after_start_ms
    for step in (-1, 1):
        j, edge = i + step, msgs[i].ts_ms
        while 0 <= j < len(msgs) and len(picked) < cfg.max_prompt_messages:
            msg = msgs[j]
            if abs(msg.ts_ms - edge) > cfg.join_gap_ms or msg.ts_ms > limit:
                break
            if msg.user_hash == user and (seg.media_id, j) not in claimed:
                picked.append(j)
                edge = msg.ts_ms
            j += step
    return sorted(picked)


def nearest_pairs(
    segments: Sequence[Segment], chat: Sequence[ChatMessage], window_ms: int
) -> dict[tuple[str, str], str]:
    """Baseline: (media_id, segment_id) -> the last message of its video before the segment
    start, within ``window_ms``."""
    by_media: dict[str, list[ChatMessage]] = defaultdict(list)
    for msg in chat:
        by_media[msg.media_id].append(msg)
    out = {}
    for media, msgs in by_media.items():
        msgs.sort(key=lambda m: (m.ts_ms, m.event_id))
        times = np.array([m.ts_ms for m in msgs], dtype=np.int64)
        for seg in segments:
            if seg.media_id != media:
                continue
            k = int(np.searchsorted(times, seg.start_ms, side="right")) - 1
            if k >= 0 and seg.start_ms - msgs[k].ts_ms <= window_ms:
                out[(media, seg.segment_id)] = msgs[k].event_id
    return out
