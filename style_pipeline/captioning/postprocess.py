"""Caption post-processing: cleanup, trigger word first, style tags, token-limit truncation.

The final caption has the shape ``<trigger>, <character>, ..., <body>, <tag>, <tag>``. The
style trigger word appears exactly once and first, followed by the trigger words of the
characters the frame shows (largest face first, each once); truncation to the text
encoder's limit (77 tokens for CLIP, start and end tokens included) removes body parts
from the end, then style tags, so the trigger words always survive.

Two styles (``CaptionConfig.style``): ``sentence`` keeps the captioner's phrase as the
body; ``tags`` turns it into a comma-separated tag list (:func:`to_tags`:
``sps_style, woman, red coat, street, night``).

Truncation happens at tag boundaries: the caption's comma-separated parts are dropped whole
from the end (body tags first, then style tags); only a body that is one single phrase
loses words from its end (never ending on a dangling ``a``/``of``/...). The style trigger
and the character triggers are never cut. Whether a caption fits is asked of a ``fits``
predicate: :class:`style_pipeline.captioning.tokens.TokenBudget` checks it against the real
tokenizers of every target text encoder (CLIP; both CLIPs for SDXL; CLIP + T5 for FLUX).

Without one, token counting uses a function passed in (e.g. :func:`tokenizer_counter`
around the CLIP tokenizer), else :func:`approx_token_count`: CLIP's pre-tokenizer split
(letter runs, single digits, other characters) with one token per punctuation character
and digit, and ``1 + (len - 1) // 7`` tokens per letter run. CLIP's BPE gives common
English words one token, so this over-counts long words: a caption is cut a little early,
rarely too late (only words rarer than their length suggests can exceed the estimate).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

TokenCounter = Callable[[str], int]
Fits = Callable[[str], bool]  # whether a whole caption fits every target encoder
Style = Literal["sentence", "tags"]

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


def budget_fits(
    max_tokens: int = CLIP_TOKEN_LIMIT, count_tokens: TokenCounter | None = None
) -> Fits:
    """A :data:`Fits` for one encoder: ``count_tokens`` (no special tokens; default
    :func:`approx_token_count`) within ``max_tokens`` minus the start and end tokens."""
    count = count_tokens or approx_token_count
    budget = max_tokens - SPECIAL_TOKENS
    return lambda text: count(text) <= budget


@dataclass(frozen=True)
class Fitted:
    """A caption fitted to the token limits, and whether anything was cut."""

    caption: str
    truncated: bool


def fit_caption(
    lead: str, body: str, tags: Sequence[str], fits: Fits, style: Style = "sentence"
) -> Fitted:
    """Join ``lead, body, tags`` and cut at tag boundaries until ``fits`` accepts it.

    The body's comma-separated parts (the tags of the ``tags`` style) are dropped whole
    from the end, then the style ``tags``; a sentence body left as one phrase loses words
    from its end instead (not ending on a dangling word). ``lead`` (the trigger words) is
    never cut: if it alone does not fit, this raises.
    """
    if not fits(lead):
        raise ValueError(f"trigger word {lead!r} alone exceeds the token limit")
    parts = [p.strip() for p in body.split(",") if p.strip()] if body.strip() else []
    tags = list(tags)
    caption = join_parts(lead, [", ".join(parts)] if parts else [], tags)
    truncated = False
    while not fits(caption):
        truncated = True
        if len(parts) > 1 or (parts and style == "tags"):
            parts.pop()
        elif parts:
            words = parts[0].split()
            words.pop()
            while words and words[-1].lower().strip(",;:") in _DANGLING:
                words.pop()
            parts = [" ".join(words)] if words else []
        else:
            tags.pop()
        caption = join_parts(lead, [", ".join(parts)] if parts else [], tags)
    return Fitted(caption, truncated)


def fit_to_limit(
    trigger: str,
    body: str,
    tags: Sequence[str],
    max_tokens: int = CLIP_TOKEN_LIMIT,
    count_tokens: TokenCounter | None = None,
    *,
    fits: Fits | None = None,
    style: Style = "sentence",
) -> str:
    """Join the parts, cutting at tag boundaries (see :func:`fit_caption`) until it fits.

    ``max_tokens`` is the encoder limit including its start and end tokens, counted with
    ``count_tokens``; ``fits`` (e.g. a :class:`~style_pipeline.captioning.tokens.TokenBudget`
    over several encoders) replaces both. The trigger is never cut; if it alone does not
    fit, this raises.
    """
    if fits is None:
        fits = budget_fits(max_tokens, count_tokens)
    try:
        return fit_caption(trigger, body, tags, fits, style).caption
    except ValueError as err:
        raise ValueError(f"{err} ({max_tokens} tokens)") from None


# Words that should not end a truncated caption.
_DANGLING = frozenset({"a", "an", "the", "of", "and", "in", "on", "with", "at", "to", "for"})


_TAG_SPLIT = re.compile(
    r"\s*[,;]\s*|\s+(?:and|with|in|on|at|near|under|behind|beside|by|while|wearing|holding|"
    r"next to|in front of|is|are)\s+"
)
_TAG_LEAD = re.compile(
    r"^(?:(?:a|an|the|some|its|his|her|their|(?:photo|picture|image|close-up) of)\s+)+"
)
_ACTIONS = frozenset(
    "standing sitting walking running lying riding posing looking smiling dancing "
    "reading talking playing jumping sleeping".split()
)


def to_tags(body: str) -> list[str]:
    """A cleaned phrase as tags: split at commas and connecting words (``with``, ``in``,
    ``on``, ``wearing`` ...), articles dropped, a common action verb split off on its own,
    repeats removed: ``a woman in a red coat walking on a street at night`` ->
    ``woman``, ``red coat``, ``walking``, ``street``, ``night``."""
    tags: list[str] = []
    for chunk in _TAG_SPLIT.split(body.lower()):
        chunk = _TAG_LEAD.sub("", chunk.strip(" .!?:-"))
        words = chunk.split()
        pieces: list[list[str]] = [[]] if words else []
        for word in words:  # "red coat walking" -> "red coat", "walking"
            if word in _ACTIONS and pieces[-1]:
                pieces.append([word])
            else:
                pieces[-1].append(word)
        for piece in pieces:
            tag = " ".join(piece).strip()
            if tag and tag not in _DANGLING and tag not in tags:
                tags.append(tag)
    return tags


def postprocess_fitted(
    raw: str,
    trigger: str,
    style_tags: Sequence[str] = (),
    max_tokens: int = CLIP_TOKEN_LIMIT,
    count_tokens: TokenCounter | None = None,
    characters: Sequence[str] = (),
    *,
    style: Style = "sentence",
    fits: Fits | None = None,
) -> Fitted:
    """Cleanup, trigger first (exactly once), then the ``characters``' trigger words (each
    once, in the given order), the body in ``style`` (sentence or tag list), style tags
    appended, truncated at tag boundaries to the limit (``fits``, else ``max_tokens``
    counted by ``count_tokens``); also say whether the caption was truncated."""
    trigger = trigger.strip()
    if not trigger:
        raise ValueError("trigger word must not be empty")
    lead = lead_words(trigger, characters)
    for word in lead:
        raw = _word_pattern(word).sub(" ", raw)
    body = clean_caption(raw)
    if style == "tags":
        body = ", ".join(to_tags(body))
    lowered = {w.lower() for w in lead}
    tags = [t for t in new_style_tags(body, style_tags, trigger) if t.lower() not in lowered]
    if fits is None:
        fits = budget_fits(max_tokens, count_tokens)
    try:
        return fit_caption(", ".join(lead), body, tags, fits, style)
    except ValueError as err:
        raise ValueError(f"{err} ({max_tokens} tokens)") from None


def postprocess_caption(raw: str, trigger: str, *args: Any, **options: Any) -> str:
    """The caption of :func:`postprocess_fitted` (``args`` and ``options`` are its own)."""
    return postprocess_fitted(raw, trigger, *args, **options).caption
