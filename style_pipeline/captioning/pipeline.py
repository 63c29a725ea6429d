"""Raw caption -> post-processed -> validated -> checked: the same path for every captioner.

After captioning, an optional :class:`~style_pipeline.captioning.agreement.AgreementChecker`
scores each caption against its image; a mismatched caption is re-captioned by the same
captioner with another prompt and the better-agreeing caption is kept. Every final caption
is counted with the target encoders' tokenizers (a
:class:`~style_pipeline.captioning.tokens.TokenBudget`), which also decide the truncation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from PIL import Image

from style_pipeline.captioning.agreement import (
    AgreementChecker,
    check_and_recaption,
    retry_prompts,
)
from style_pipeline.captioning.captioners import CaptionResult
from style_pipeline.captioning.factory import SelectedCaptioner
from style_pipeline.captioning.postprocess import (
    Fits,
    TokenCounter,
    lead_words,
    postprocess_fitted,
)
from style_pipeline.captioning.tokens import TokenBudget
from style_pipeline.captioning.validation import (
    STOPWORDS,
    EmbedFn,
    Vocabulary,
    validate_caption,
)
from style_pipeline.contracts.captioning import CaptionConfig


@dataclass(frozen=True)
class CaptionRow:
    """A finished caption with its provenance, validation, agreement and token counts."""

    caption: str
    raw: str
    source: str
    model: str
    cached: bool
    valid: bool
    violations: tuple[str, ...]
    repairs: tuple[str, ...]  # "original->replacement"
    truncated: bool = False
    token_counts: tuple[int, ...] = ()  # per target encoder, special tokens included
    caption_mismatch: bool = False  # the first caption failed the agreement check
    still_mismatched: bool = False  # the kept caption fails it too
    clip_similarity: float | None = None
    clip_margin: float | None = None
    itm_score: float | None = None
    recaption_attempts: int = 0
    first_caption: str | None = None  # the replaced first caption
    first_clip_similarity: float | None = None
    first_itm_score: float | None = None

    @property
    def token_count(self) -> int | None:
        return max(self.token_counts) if self.token_counts else None


@dataclass(frozen=True)
class Finished:
    caption: str
    valid: bool
    violations: list[str]
    repairs: list[str]
    truncated: bool


def finish(
    raw: str,
    config: CaptionConfig,
    vocabulary: Vocabulary,
    *,
    stopwords: frozenset[str] = STOPWORDS,
    count_tokens: TokenCounter | None = None,
    embed: EmbedFn | None = None,
    characters: Sequence[str] = (),
    allowed: Iterable[str] = (),
    fits: Fits | None = None,
) -> Finished:
    """Post-process, validate (repairing near-misses), and re-fit to the token limit; also
    say whether the caption was truncated to fit.

    ``characters``: trigger words of the characters in the image, put right after the style
    trigger; ``allowed``: more phrases the ontology check accepts as they are (every
    character's trigger word and aliases), besides the trigger words and style tags;
    ``fits``: whether a caption fits the target encoders (default: ``config.max_tokens``
    counted with ``count_tokens``).
    """

    def post(text: str):
        return postprocess_fitted(
            text, config.trigger_word, config.style_tags, config.max_tokens, count_tokens,
            characters, style=config.style, fits=fits,
        )  # fmt: skip

    first = post(raw)
    result = validate_caption(
        first.caption,
        vocabulary,
        stopwords,
        allowed_extra=[config.trigger_word, *config.style_tags, *characters, *allowed],
        cutoff=config.similarity_cutoff,
        embed=embed,
    )
    final = post(result.caption) if result.repairs else first
    repairs = [f"{r.original}->{r.replacement}" for r in result.repairs]
    truncated = first.truncated or final.truncated
    return Finished(final.caption, result.valid, list(result.violations), repairs, truncated)


def finish_caption(
    raw: str, config: CaptionConfig, vocabulary: Vocabulary, **options: Any
) -> tuple[str, bool, list[str], list[str]]:
    """:func:`finish` (``options`` are its keywords) as (caption, valid, violations, repairs)."""
    done = finish(raw, config, vocabulary, **options)
    return done.caption, done.valid, done.violations, done.repairs


def _row(result: CaptionResult, done: Finished, budget: TokenBudget | None) -> CaptionRow:
    counts = tuple(budget.counts(done.caption)) if budget is not None else ()
    return CaptionRow(
        done.caption, result.caption, result.source, result.model, result.cached, done.valid,
        tuple(done.violations), tuple(done.repairs), done.truncated, counts,
    )  # fmt: skip


def caption_images(
    selected: SelectedCaptioner,
    images: Sequence[Image.Image],
    config: CaptionConfig,
    vocabulary: Vocabulary,
    *,
    labels: Sequence[Mapping[str, Sequence[str]]] | None = None,
    stopwords: frozenset[str] = STOPWORDS,
    count_tokens: TokenCounter | None = None,
    embed: EmbedFn | None = None,
    characters: Sequence[Sequence[str]] | None = None,
    allowed: Iterable[str] = (),
    budget: TokenBudget | None = None,
    checker: AgreementChecker | None = None,
    image_vectors: np.ndarray | None = None,
) -> list[CaptionRow]:
    """Caption ``images`` with the selected captioner, finish and check every caption.

    ``characters``: per image, the trigger words of the characters it shows (see
    :func:`finish`); ``allowed``: phrases the ontology check keeps as they are;
    ``budget``: the target encoders' tokenizers (fitting and ``token_counts``; None:
    ``config.max_tokens`` with ``count_tokens``); ``checker``: image-caption agreement
    (None: no check), with ``image_vectors`` the frames' CLIP vectors if already known.
    """
    if characters is not None and len(characters) != len(images):
        raise ValueError(f"{len(characters)} character lists for {len(images)} images")
    chars = [list(c) for c in characters] if characters is not None else [[] for _ in images]
    allowed = tuple(allowed)

    def finished(result: CaptionResult, index: int) -> CaptionRow:
        done = finish(
            result.caption, config, vocabulary, stopwords=stopwords, count_tokens=count_tokens,
            embed=embed, characters=chars[index], allowed=allowed, fits=budget,
        )  # fmt: skip
        return _row(result, done, budget)

    results = selected.captioner.caption(images, selected.prompt or None, labels)
    rows = [finished(result, i) for i, result in enumerate(results)]
    if checker is None:
        return rows
    candidates: dict[tuple[int, str], CaptionRow] = {}

    def recaption(indices: list[int], prompts: list[str]) -> list[str]:
        sub_labels = [labels[i] for i in indices] if labels is not None else None
        again = selected.captioner.caption([images[i] for i in indices], prompts, sub_labels)
        out = []
        for i, result in zip(indices, again, strict=True):
            row = finished(result, i)
            candidates[(i, row.caption)] = row
            out.append(row.caption)
        return out

    check = config.check
    prompts = retry_prompts(
        selected.backend, selected.prompt, check.recaption_attempts, check.recaption_prompts
    )
    lead = [lead_words(config.trigger_word, c) for c in chars]
    kept, checked, _ = check_and_recaption(
        checker, images, [r.caption for r in rows], lead,
        recaption if prompts else None, prompts, image_vectors,
    )  # fmt: skip
    out = []
    for row, caption, state in zip(rows, kept, checked, strict=True):
        base = candidates[(state.index, caption)] if state.replaced else row
        out.append(
            replace(
                base,  # provenance, validation and token counts of the kept caption
                caption_mismatch=state.first.mismatch,
                still_mismatched=state.kept.mismatch,
                clip_similarity=state.kept.clip_similarity,
                clip_margin=state.kept.clip_margin,
                itm_score=state.kept.itm_score,
                recaption_attempts=state.attempts,
                first_caption=row.caption if state.replaced else None,
                first_clip_similarity=state.first.clip_similarity,
                first_itm_score=state.first.itm_score,
            )
        )
    return out
