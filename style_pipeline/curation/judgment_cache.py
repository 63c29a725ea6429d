"""Judgments kept in the Store so no pair is asked twice (whichever way round it comes).

The key is the sha256 of (the two frames' content hashes in sorted order, the theme
hash, the judge model, the prompt version) at ``layout.judgment_cache_key(digest)``;
the entry names the winner by content hash, so ``(a, b)`` and ``(b, a)`` share it. Only
verdicts a judge actually gave are kept, never a fallback (the endpoint may answer next
time). An unreadable entry is a miss, logged by key, and rewritten.
"""

from __future__ import annotations

import hashlib
import json
import logging

from style_pipeline.curation.judges import Candidate, Verdict
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

log = logging.getLogger(__name__)


def judgment_key(a_hash: str, b_hash: str, theme_hash: str, model: str, prompt_version: str) -> str:
    """Store key of the cached judgment of one pair under one theme, model and prompt."""
    blob = json.dumps([*sorted((a_hash, b_hash)), theme_hash, model, prompt_version]).encode()
    return layout.judgment_cache_key(hashlib.sha256(blob).hexdigest())


def read_judgment(store: Store, key: str, a: Candidate, b: Candidate) -> Verdict | None:
    """The cached verdict for ``a`` vs ``b`` (no tokens: nothing was spent today), or None."""
    if not store.exists(key):
        return None
    try:
        entry = json.loads(store.read_bytes(key))
        winner_hash, rationale, judge = entry["winner_hash"], entry["rationale"], entry["judge"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("judgment cache entry %s is unreadable (%s): a miss", key, str(exc)[:200])
        return None
    by_hash = {a.content_hash: a.frame_id, b.content_hash: b.frame_id}
    if winner_hash not in by_hash:
        log.warning("judgment cache entry %s names neither frame: a miss", key)
        return None
    return Verdict(by_hash[winner_hash], str(rationale), str(judge))


def write_judgment(store: Store, key: str, a: Candidate, b: Candidate, verdict: Verdict) -> None:
    """Keep ``verdict`` (winner by content hash, with what it cost when it was asked)."""
    winner = a if verdict.winner == a.frame_id else b
    entry = {
        "winner_hash": winner.content_hash,
        "rationale": verdict.rationale,
        "judge": verdict.judge,
        "input_tokens": verdict.input_tokens,
        "output_tokens": verdict.output_tokens,
        "cost_usd": verdict.cost_usd,
    }
    store.put_bytes(json.dumps(entry, sort_keys=True).encode(), key)
