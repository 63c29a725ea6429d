"""Caption post-processing: cleanup, trigger word first, style tags, token-limit truncation.

The final caption has the shape ``<trigger>, <character>, ..., <body>, <tag>, <tag>``. The
style trigger word appears exactly once and first, followed by the trigger words of the
characters the frame shows (largest face first, each once); truncation to the text
encoder's limit (77 tokens for CLIP, start and end tokens included) removes words from the
end of the body, then style tags, so the trigger words always survive.

Token counting uses a function passed in (e.g. :func:`tokenizer_counter` around the CLIP
tokenizer). Without one, :func:`approx_token_count` is used: CLIP's pre-tokenizer split
(letter runs, single digits, other characters) with one token per punctuation character
and digit, and ``1 + (len - 1) // 7`` tokens per letter run. CLIP's BPE gives common
English words one token, so this over-counts long words: a caption is cut a little early,
rarely too late (only words rarer than their length suggests can exceed the estimate).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

TokenCounter = Callable[[str], int]

CLIP_TOKEN_LIMIT = 77
SPECIAL_TOKENS = 2  # start and end tokens count against the encoder's limit

# BLIP's web-caption artefacts ("arafed", "araffe", "arafly", ...), and lead-in phrases.
_ARTEFACT = re.compile(r"\bar+af+\w*\b", re.IGNORECASE)
_LEAD_IN = re.compile(
    r"^(?:(?:there|here) (?:is|are)|this is|it is|(?:this|the) (?:image|picture|photo) "
    r"(?:shows|depicts))\s+",
    re.IGNORECASE,
)
_PIECES = re.compile(r"[^\W\d_]+|\S")
_MAX_NGRAM = 4


def approx_token_count(text: str) -> int:
    """Approximate CLIP BPE token count (without start/end tokens); over-counts rare words."""
    return sum(1 + (len(p) - 1) // 7 for p in _PIECES.findall(text))


def tokenizer_counter(tokenizer) -> TokenCounter:
    """A :data:`TokenCounter` from a Hugging Face tokenizer (special tokens not counted)."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def collapse_repeats(words: list[str]) -> list[str]:
    """Drop immediately repeated words and phrases of up to four words.

    ``a a cat on a table on a table`` -> ``a cat on a table``.
    """
    out: list[str] = []
    keys: list[str] = []
    for word in words:
        out.append(word)
        keys.append(word.lower().strip(",;:.!?"))
        for n in range(1, _MAX_NGRAM + 1):
            if len(keys) >= 2 * n and keys[-n:] == keys[-2 * n : -n]:
                tail = out[-1][len(out[-1].rstrip(",;:.!?")) :]
                del out[-n:], keys[-n:]
                out[-1] = out[-1].rstrip(",;:.!?") + tail
                break
    return out


def clean_caption(text: str) -> str:
    """Lowercase, strip BLIP artefacts and lead-ins, collapse repeats, tidy punctuation."""
    text = _ARTEFACT.sub(" ", text.lower())
    text = re.sub(r"\s+", " ", text).strip()
    previous = None
    while previous != text:
        previous = text
        text = _LEAD_IN.sub("", text)
    text = re.sub(r"\s+([,.;:!?])", r"\1", text)
    text = re.sub(r"([,;:])(?=\S)", r"\1 ", text)
    text = re.sub(r"([,;:.!?])(?:\s*[,;:])+", r"\1", text)
    words = collapse_repeats(text.split())
    return " ".join(words).strip(" ,;:.!?-")


def _word_pattern(word: str) -> re.Pattern[str]:
    """``word`` as a whole word or phrase, case-insensitive."""
    return re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])", re.IGNORECASE)


def lead_words(trigger: str, characters: Sequence[str] = ()) -> list[str]:
    """The style trigger then each character trigger, stripped, without repeats (any case)."""
    out: list[str] = []
    for word in (w.strip() for w in (trigger, *characters)):
        if word and word.lower() not in (o.lower() for o in out):
            out.append(word)
    return out


def put_trigger_first(body: str, trigger: str) -> str:
    """``<trigger>, <body>`` with every other occurrence of the trigger removed."""
    if not trigger.strip():
        raise ValueError("trigger word must not be empty")
    body = _word_pattern(trigger).sub(" ", body)
    body = re.sub(r"\s+", " ", body)
    body = re.sub(r"(?:\s*,)+", ",", body).strip(" ,")
    return f"{trigger}, {body}" if body else trigger


def join_parts(trigger: str, body_words: Sequence[str], tags: Sequence[str]) -> str:
    """``trigger, body, tag1, tag2`` (empty parts left out)."""
    parts = [trigger]
    body = " ".join(body_words).strip(" ,;:")
    if body:
        parts.append(body)
    parts.extend(tags)
    return ", ".join(parts)


def new_style_tags(body: str, style_tags: Sequence[str], trigger: str) -> list[str]:
    """Style tags not yet present in ``body`` (whole words, case-insensitive), in order."""
    seen: list[str] = []
    for tag in (t.strip() for t in style_tags):
        if not tag or tag.lower() == trigger.lower() or tag.lower() in (s.lower() for s in seen):
            continue
        if not _word_pattern(tag).search(body):
            seen.append(tag)
    return seen


def fit_to_limit(
    trigger: str,
    body: str,
    tags: Sequence[str],
    max_tokens: int = CLIP_TOKEN_LIMIT,
    count_tokens: TokenCounter | None = None,
) -> str:
    """Join the parts, dropping body words from the end (then tags) until the caption fits.

    ``max_tokens`` is the encoder limit including its start and end tokens. The trigger is
    never cut; if the trigger alone does not fit, this raises.
    """
    count = count_tokens or approx_token_count
    budget = max_tokens - SPECIAL_TOKENS
    if count(trigger) > budget:
        raise ValueError(f"trigger word {trigger!r} alone exceeds the {max_tokens}-token limit")
    words = body.split()
    tags = list(tags)
    caption = join_parts(trigger, words, tags)
    while count(caption) > budget:
        if words:
            words.pop()
            while words and words[-1].lower().strip(",;:") in _DANGLING:
                words.pop()
        else:
            tags.pop()
        caption = join_parts(trigger, words, tags)
    return caption


# Words that should not end a truncated caption.
_DANGLING = frozenset({"a", "an", "the", "of", "and", "in", "on", "with", "at", "to", "for"})


def postprocess_caption(
    raw: str,
    trigger: str,
    style_tags: Sequence[str] = (),
    max_tokens: int = CLIP_TOKEN_LIMIT,
    count_tokens: TokenCounter | None = None,
    characters: Sequence[str] = (),
) -> str:
    """Cleanup, trigger first (exactly once), then the ``characters``' trigger words (each
    once, in the given order), style tags appended, truncated to the limit."""
    trigger = trigger.strip()
    if not trigger:
        raise ValueError("trigger word must not be empty")
    lead = lead_words(trigger, characters)
    for word in lead:
        raw = _word_pattern(word).sub(" ", raw)
    body = clean_caption(raw)
    lowered = {w.lower() for w in lead}
    tags = [t for t in new_style_tags(body, style_tags, trigger) if t.lower() not in lowered]
    return fit_to_limit(", ".join(lead), body, tags, max_tokens, count_tokens)
