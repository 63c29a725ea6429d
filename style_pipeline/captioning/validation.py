"""Caption validation against the controlled vocabulary (ontology terms + synonyms + stop words).

Every word of a caption must be an ontology term or synonym (multi-word terms such as
``golden hour`` match as a whole), a stop word, the trigger word or a style tag. An
unknown word is repaired to the nearest ontology term when it is similar enough
(``difflib`` ratio, then cosine similarity when a text-embedding function is given),
otherwise it is kept and reported as a violation.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

EmbedFn = Callable[[Sequence[str]], np.ndarray]  # texts -> (n, dim) embeddings

_WORD = re.compile(r"[\w'][\w'-]*|[&/]")

STOPWORDS: frozenset[str] = frozenset(
    """
    a an the this that these those some any each every both all no one two three four
    several many few more most other another such own same
    of in on at by for from to into onto over under near behind beside besides between
    through across against along around above below beneath up down off out inside outside
    within without toward towards upon via per among amid before after during while
    and or but nor so yet as than then also only just very too quite rather
    is are was were be been being has have had it its it's their theirs his her hers
    they them he she we our you your there here which who whom whose what where when
    with not &
    photo photograph image picture shot scene style view
    """.split()
)


@dataclass(frozen=True)
class Vocabulary:
    """Allowed phrases: canonical terms and their synonyms (all lowercase)."""

    terms: frozenset[str]
    synonyms: Mapping[str, str] = field(default_factory=dict)  # synonym -> canonical term

    @classmethod
    def build(
        cls, terms: Iterable[str], synonyms: Mapping[str, Iterable[str]] | None = None
    ) -> Vocabulary:
        """From canonical terms and ``term -> [synonyms]``; normalises case and spaces."""
        norm = {_norm(t) for t in terms}
        syn = {_norm(s): _norm(t) for t, group in dict(synonyms or {}).items() for s in group}
        return cls(frozenset(norm), syn)

    @property
    def phrases(self) -> frozenset[str]:
        return self.terms | frozenset(self.synonyms)

    def canonical(self, phrase: str) -> str:
        return self.synonyms.get(phrase, phrase)


class Repair(NamedTuple):
    original: str
    replacement: str
    score: float
    method: str  # "spelling" or "embedding"


class ValidationResult(NamedTuple):
    caption: str
    valid: bool
    violations: list[str]
    repairs: list[Repair]


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def load_stopwords(path: str | Path | None = None) -> frozenset[str]:
    """:data:`STOPWORDS`, plus the words of ``path`` (one per line, ``#`` comments) if given."""
    if path is None:
        return STOPWORDS
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return STOPWORDS | {_norm(line) for line in lines if line.strip() and not line.startswith("#")}


def nearest_term(
    word: str,
    vocabulary: Vocabulary,
    cutoff: float = 0.8,
    embed: EmbedFn | None = None,
    embed_cutoff: float = 0.85,
) -> Repair | None:
    """The closest canonical term to ``word`` above the cut-off, or None."""
    candidates = sorted(vocabulary.phrases)
    if not candidates:
        return None
    scored = [(difflib.SequenceMatcher(None, word, c).ratio(), c) for c in candidates]
    score, best = max(scored, key=lambda sc: (sc[0], -abs(len(sc[1]) - len(word))))
    if score >= cutoff:
        return Repair(word, vocabulary.canonical(best), round(score, 4), "spelling")
    if embed is None:
        return None
    vectors = np.asarray(embed([word, *candidates]), dtype=np.float64)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)
    sims = vectors[1:] @ vectors[0]
    index = int(np.argmax(sims))
    if sims[index] < embed_cutoff:
        return None
    term = vocabulary.canonical(candidates[index])
    return Repair(word, term, round(float(sims[index]), 4), "embedding")


def _windows(caption: str, words: list[tuple], i: int, max_words: int):
    """Phrases starting at word ``i``, longest first, as (n, start, end, text).

    A multi-word window is only formed from words separated by plain spaces.
    """
    for n in range(min(max_words, len(words) - i), 0, -1):
        chunk = words[i : i + n]
        if all(caption[a[1] : b[0]].isspace() for a, b in zip(chunk, chunk[1:], strict=False)):
            yield n, chunk[0][0], chunk[-1][1], " ".join(w[2] for w in chunk)


def _fuzzy_phrase(text: str, n: int, vocabulary: Vocabulary, cutoff: float) -> Repair | None:
    """Nearest multi-word ontology phrase of the same length (``film grian`` -> ``film grain``)."""
    best = max(
        ((difflib.SequenceMatcher(None, text, p).ratio(), p) for p in vocabulary.phrases
         if len(p.split()) == n),
        default=(0.0, ""),
    )  # fmt: skip
    if best[0] < cutoff:
        return None
    return Repair(text, vocabulary.canonical(best[1]), round(best[0], 4), "spelling")


def _match(windows, words, allowed, vocabulary, cutoff) -> tuple[tuple, Repair | None]:
    """The window to consume next: an allowed phrase, a fuzzy multi-word repair, or one word."""
    for window in windows:
        if window[3] in allowed:
            return window, None
    for window in windows[:-1]:
        n, text = window[0], window[3]
        if any(w[2] not in allowed for w in words[:n]):
            repair = _fuzzy_phrase(text, n, vocabulary, cutoff)
            if repair:
                return window, repair
    return windows[-1], None


def validate_caption(
    caption: str,
    vocabulary: Vocabulary,
    stopwords: frozenset[str] = STOPWORDS,
    *,
    allowed_extra: Iterable[str] = (),
    cutoff: float = 0.8,
    embed: EmbedFn | None = None,
    embed_cutoff: float = 0.85,
) -> ValidationResult:
    """Check every word; repair near-misses in place, flag the rest.

    Scanning left to right, the longest allowed phrase wins; else a multi-word window
    holding an unknown word is matched to a same-length ontology phrase; else the single
    word is repaired (:func:`nearest_term`) or flagged. ``allowed_extra`` holds the
    trigger word and style tags. ``valid`` is True when no violation remains.
    """
    allowed = vocabulary.phrases | stopwords | {_norm(x) for x in allowed_extra}
    max_words = max((len(p.split()) for p in allowed), default=1)
    words = [(m.start(), m.end(), m.group().lower()) for m in _WORD.finditer(caption)]
    out, last, violations, repairs = [], 0, [], []
    i = 0
    while i < len(words):
        windows = list(_windows(caption, words, i, max_words))
        (n, start, end, text), repair = _match(windows, words[i:], allowed, vocabulary, cutoff)
        if repair is None and text not in allowed:
            repair = nearest_term(text, vocabulary, cutoff, embed, embed_cutoff)
        out.append(caption[last:start])
        if text in allowed:
            out.append(caption[start:end])
        elif repair is None:
            violations.append(text)
            out.append(caption[start:end])
        else:
            repairs.append(repair)
            out.append(repair.replacement)
        last = end
        i += n
    out.append(caption[last:])
    return ValidationResult("".join(out), not violations, violations, repairs)
