"""Prompt templates built from the ontology: BLIP conditional prompt, VLM instruction, fallback.

* conditional prompt (BLIP): ``a photo in the style of <trigger>, `` — the model continues it;
* instruction (vision-language endpoints and local chat VLMs): asks for one short caption
  using the ontology's terms, listed per category;
* JoyCaption-style request (endpoints serving a JoyCaption model): its system turn and a
  "Write a descriptive caption ..." / "Write a list of Booru-like tags ..." user turn
  with the length and extra instructions, here the ontology terms;
* template caption (no model): the zero-shot ontology labels of an image, joined in the
  ontology's category order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from style_pipeline.contracts.captioning import (
    DEFAULT_INSTRUCTION,
)


def vocabulary_listing(categories: Mapping[str, Sequence[str]], per_category: int = 40) -> str:
    """``- category: term, term, ...`` lines (at most ``per_category`` terms each)."""
    lines = []
    for name, terms in categories.items():
        shown = list(terms)[:per_category]
        if shown:
            lines.append(f"- {name}: {', '.join(shown)}")
    return "\n".join(lines)


def instruction_prompt(
    categories: Mapping[str, Sequence[str]],
    template: str = DEFAULT_INSTRUCTION,
    max_words: int = 40,
    per_category: int = 40,
) -> str:
    """The instruction sent to a vision-language endpoint, listing the ontology terms."""
    return template.format(
        max_words=max_words, vocabulary=vocabulary_listing(categories, per_category)
    )


# JoyCaption's system turn (its Alpha Two / Beta One demos), and its caption-type requests
JOYCAPTION_SYSTEM = "You are a helpful image captioner."
_JOYCAPTION_REQUEST = {
    "sentence": "Write a descriptive caption for this image in a casual tone within "
    "{max_words} words.",
    "tags": "Write a list of Booru-like tags for this image within {max_words} words.",
}
_JOYCAPTION_EXTRAS = (
    "Do NOT mention the image's artistic style or the artist's name. "
    "Use lowercase and no full stop at the end."
)


def joycaption_prompt(
    categories: Mapping[str, Sequence[str]],
    style: Literal["sentence", "tags"] = "sentence",
    max_words: int = 40,
    per_category: int = 40,
) -> str:
    """The user turn of a JoyCaption-style request: caption type and length, then extras.

    JoyCaption models take "extra options" as plain sentences after the request; here they
    name the ontology's terms, keep the style unnamed and ask for lowercase text.
    """
    request = _JOYCAPTION_REQUEST[style].format(max_words=max_words)
    text = f"{request} {_JOYCAPTION_EXTRAS}"
    listing = vocabulary_listing(categories, per_category)
    return f"{text}\nWhere they apply, use these words:\n{listing}" if listing else text


def template_caption(
    labels: Mapping[str, Sequence[str | tuple[str, float]]],
    category_order: Sequence[str] | None = None,
    per_category: int = 2,
) -> str:
    """Comma-joined labels, ``per_category`` best per category, in ``category_order``.

    Labels are terms or ``(term, score)`` pairs as returned by the ontology's
    ``zero_shot_by_category``. Categories missing from ``category_order`` follow in their
    given order; duplicate terms are written once. Raises when no label is given at all.
    """
    order = list(category_order or [])
    order += [c for c in labels if c not in order]
    terms: list[str] = []
    for category in order:
        for label in list(labels.get(category, ()))[:per_category]:
            term = " ".join((label if isinstance(label, str) else label[0]).lower().split())
            if term and term not in terms:
                terms.append(term)
    if not terms:
        raise ValueError("no zero-shot labels to build a template caption from")
    return ", ".join(terms)
