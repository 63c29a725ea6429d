"""Raw caption -> post-processed -> validated: the same path for every captioner."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from PIL import Image

from style_pipeline.captioning.factory import SelectedCaptioner
from style_pipeline.captioning.postprocess import TokenCounter, postprocess_caption
from style_pipeline.captioning.validation import (
    STOPWORDS,
    EmbedFn,
    Vocabulary,
    validate_caption,
)
from style_pipeline.contracts.captioning import CaptionConfig


@dataclass(frozen=True)
class CaptionRow:
    """A finished caption with its provenance and validation outcome."""

    caption: str
    raw: str
    source: str
    model: str
    cached: bool
    valid: bool
    violations: tuple[str, ...]
    repairs: tuple[str, ...]  # "original->replacement"


def finish_caption(
    raw: str,
    config: CaptionConfig,
    vocabulary: Vocabulary,
    *,
    stopwords: frozenset[str] = STOPWORDS,
    count_tokens: TokenCounter | None = None,
    embed: EmbedFn | None = None,
    characters: Sequence[str] = (),
    allowed: Iterable[str] = (),
) -> tuple[str, bool, list[str], list[str]]:
    """Post-process, validate (repairing near-misses), and re-fit to the token limit.

    ``characters``: trigger words of the characters in the image, put right after the style
    trigger; ``allowed``: more phrases the ontology check accepts as they are (every
    character's trigger word and aliases), besides the trigger words and style tags.
    """

    def post(text: str) -> str:
        return postprocess_caption(
            text,
            config.trigger_word,
            config.style_tags,
            config.max_tokens,
            count_tokens,
            characters=characters,
        )

    caption = post(raw)
    result = validate_caption(
        caption,
        vocabulary,
        stopwords,
        allowed_extra=[config.trigger_word, *config.style_tags, *characters, *allowed],
        cutoff=config.similarity_cutoff,
        embed=embed,
    )
    final = post(result.caption) if result.repairs else result.caption
    repairs = [f"{r.original}->{r.replacement}" for r in result.repairs]
    return final, result.valid, list(result.violations), repairs


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
) -> list[CaptionRow]:
    """Caption ``images`` with the selected captioner and finish every caption.

    ``characters``: per image, the trigger words of the characters it shows (see
    :func:`finish_caption`); ``allowed``: phrases the ontology check keeps as they are.
    """
    if characters is not None and len(characters) != len(images):
        raise ValueError(f"{len(characters)} character lists for {len(images)} images")
    results = selected.captioner.caption(images, selected.prompt or None, labels)
    allowed = tuple(allowed)
    rows = []
    for index, result in enumerate(results):
        caption, valid, violations, repairs = finish_caption(
            result.caption, config, vocabulary,
            stopwords=stopwords, count_tokens=count_tokens, embed=embed,
            characters=characters[index] if characters is not None else (), allowed=allowed,
        )  # fmt: skip
        rows.append(
            CaptionRow(
                caption,
                result.caption,
                result.source,
                result.model,
                result.cached,
                valid,
                tuple(violations),
                tuple(repairs),
            )  # fmt: skip
        )
    return rows
