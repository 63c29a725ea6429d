"""Accepted (prompt, response) pairs -> a deduplicated, filtered SFT set split by source video.

Each pair is normalised (whitespace), then filtered with a reason code (length, language,
spam, repetition, profanity), then deduplicated: exact (sha256 of the normalised pair) and
near (MinHash LSH over character shingles, datasketch), the first row in a stable order
kept and the others pointing at it. The split is a function of the source video alone
(sha256 of salt + media_id), so one video's pairs never straddle two splits. Rows render
as chat-format messages; the snapshot id hashes the rows, the template and the split
manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from style_pipeline.contracts.alignment import SftRecord, SftSettings, SftSplit, Split

_WS = re.compile(r"\s+")
_WORD = re.compile(r"[a-z0-9']+")
_URL = re.compile(r"https?://|www\.|\b\w+\.(?:com|net|org|gg|ly|tv|io)\b", re.IGNORECASE)
TEMPLATE_VERSION = "messages-v1"


@dataclass(frozen=True)
class Pair:
    """An accepted aligned pair, as the SFT stage reads it."""

    pair_id: str
    media_id: str
    prompt: str
    response: str
    language: str = ""  # the transcript's language (the response's)


def normalise(text: str) -> str:
    return _WS.sub(" ", text.replace("\n", " / ")).strip()


def split_of(media_id: str, split: SftSplit) -> Split:
    """train | val | test of a source video: a fixed function of its id and the salt."""
    digest = hashlib.sha256(f"{split.salt}\x1f{media_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < split.train:
        return "train"
    return "val" if u < split.train + split.val else "test"


def _profanity_pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w.lower()) for w in words)
    return re.compile(rf"\b(?:{alternatives})(?:s|es|ing|ed|er|ers|y)?\b", re.IGNORECASE)


def _is_spam(text: str, cfg: SftSettings) -> bool:
    if _URL.search(text):
        return True
    if re.search(rf"(.)\1{{{cfg.max_repeat_char_run},}}", text):
        return True
    words = _WORD.findall(text.lower())
    # one word typed again and again ("hype hype hype hype")
    return len(words) >= 4 and len(set(words)) == 1


def detect_language(text: str) -> str | None:
    """langdetect's best guess, seeded (deterministic); None when it cannot tell."""
    from langdetect import (  # type: ignore[import-untyped]
        DetectorFactory,
        LangDetectException,
        detect,
    )

    DetectorFactory.seed = 0
    try:
        return str(detect(text))
    except LangDetectException:
        return None


def filter_reason(pair: Pair, cfg: SftSettings, profanity: re.Pattern[str] | None) -> str:
    """The first filter ``pair`` fails ('' when it passes them all)."""
    prompt, response = pair.prompt, pair.response
    words = _WORD.findall(response.lower())
    if len(prompt) < cfg.min_prompt_chars:
        return "prompt_too_short"
    if len(prompt) > cfg.max_prompt_chars:
        return "prompt_too_long"
    if len(words) < cfg.min_response_words:
        return "response_too_short"
    if len(words) > cfg.max_response_words:
        return "response_too_long"
    if _is_spam(prompt, cfg) or _is_spam(response, cfg):
        return "spam"
    if words and len(set(words)) / len(words) < cfg.min_distinct_word_ratio:
        return "repetition"
    if profanity is not None and (profanity.search(prompt) or profanity.search(response)):
        return "profanity"
    if cfg.languages:
        allowed = set(cfg.languages)
        speech_lang = pair.language.split("-")[0].lower()
        if speech_lang and speech_lang not in allowed:
            return "language"
        if len(prompt) >= cfg.language_min_chars:
            guess = detect_language(prompt)
            if guess is not None and guess not in allowed:
                return "language"
    return ""


def _shingles(text: str, k: int) -> set[bytes]:
    text = text.lower()
    if len(text) <= k:
        return {text.encode()}
    return {text[i : i + k].encode() for i in range(len(text) - k + 1)}


def build_rows(pairs: Sequence[Pair], cfg: SftSettings) -> list[SftRecord]:
    """One ``SftRecord`` per pair, in a stable order (media_id, pair_id): kept or why not."""
    from datasketch import MinHash, MinHashLSH  # type: ignore[import-untyped]

    profanity = _profanity_pattern(cfg.profanity)
    lsh = MinHashLSH(threshold=cfg.near_dup_threshold, num_perm=cfg.minhash_perm)
    exact: dict[str, str] = {}
    rows = []
    for pair in sorted(pairs, key=lambda p: (p.media_id, p.pair_id)):
        prompt, response = normalise(pair.prompt), normalise(pair.response)
        clean = Pair(pair.pair_id, pair.media_id, prompt, response, pair.language)
        reason, duplicate_of = filter_reason(clean, cfg, profanity), None
        if not reason:
            key = hashlib.sha256(f"{prompt.lower()}\x1f{response.lower()}".encode()).hexdigest()
            if key in exact:
                reason, duplicate_of = "duplicate_exact", exact[key]
            else:
                sketch = MinHash(num_perm=cfg.minhash_perm, seed=1)
                sketch.update_batch(list(_shingles(f"{prompt}\n{response}", cfg.shingle_chars)))
                near = sorted(lsh.query(sketch))
                if near:
                    reason, duplicate_of = "duplicate_near", near[0]
                else:
                    exact[key] = pair.pair_id
                    lsh.insert(pair.pair_id, sketch)
        rows.append(
            SftRecord(
                pair_id=pair.pair_id,
                media_id=pair.media_id,
                split=split_of(pair.media_id, cfg.split),
                prompt=prompt,
                response=response,
                status="rejected" if reason else "kept",
                reason=reason,
                duplicate_of=duplicate_of,
            )
        )
    return rows


def template(cfg: SftSettings) -> str:
    """The chat-format template hashed into the snapshot id (its version + system prompt)."""
    return json.dumps(
        {"format": TEMPLATE_VERSION, "roles": ["user", "assistant"], "system": cfg.system_prompt},
        sort_keys=True,
    )


def messages(row: SftRecord, cfg: SftSettings) -> dict[str, list[dict[str, str]]]:
    """One JSONL line: ``{"messages": [system?, user, assistant]}``."""
    msgs = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    msgs += [
        {"role": "user", "content": row.prompt},
        {"role": "assistant", "content": row.response},
    ]
    return {"messages": msgs}


def jsonl(rows: Sequence[SftRecord], split: Split, cfg: SftSettings) -> bytes:
    lines = [
        json.dumps(messages(r, cfg), ensure_ascii=False, sort_keys=True)
        for r in rows
        if r.status == "kept" and r.split == split
    ]
    return ("\n".join(lines) + "\n").encode() if lines else b""


def split_manifest(rows: Sequence[SftRecord]) -> dict[str, list[str]]:
    """split -> its source videos (sorted); every media_id in exactly one split."""
    out: dict[str, set[str]] = {"train": set(), "val": set(), "test": set()}
    for row in rows:
        if row.status == "kept":
            out[row.split].add(row.media_id)
    return {split: sorted(ids) for split, ids in out.items()}


def snapshot_id(rows: Sequence[SftRecord], cfg: SftSettings) -> str:
    """sha256 over the kept rows, the template and the split manifest."""
    digest = hashlib.sha256()
    for row in rows:
        if row.status == "kept":
            digest.update(json.dumps(row.model_dump(mode="json"), sort_keys=True).encode())
            digest.update(b"\n")
    digest.update(template(cfg).encode())
    digest.update(json.dumps(split_manifest(rows), sort_keys=True).encode())
    return digest.hexdigest()
