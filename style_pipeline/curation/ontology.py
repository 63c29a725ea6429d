"""The controlled vocabulary (``data/ontology.json``) for captions and CLIP zero-shot labels.

Each category (subject, setting, lighting, ...) holds terms with optional synonyms and
prompt templates such as ``"a photo of {term}"``. A term's text embedding is the mean
of its prompts over the term and its synonyms (prompt ensembling), re-normalised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DEFAULT_TEMPLATES = ("a photo of {term}.", "an image showing {term}.")
_TERM_PATTERN = r"^[a-z0-9][a-z0-9 '&/-]*[a-z0-9]$|^[a-z0-9]$"


class Term(BaseModel):
    """One vocabulary entry; ``term`` is the canonical lower-case label used in captions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    term: str = Field(pattern=_TERM_PATTERN)
    synonyms: list[str] = Field(default_factory=list)
    description: str | None = None

    @field_validator("synonyms")
    @classmethod
    def _clean_synonyms(cls, values: list[str]) -> list[str]:
        cleaned = [v.strip().lower() for v in values]
        if any(not v for v in cleaned):
            raise ValueError("synonyms must not be empty")
        return cleaned


class Category(BaseModel):
    """A facet of the style vocabulary with its own zero-shot prompt templates."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = ""
    templates: list[str] = Field(default_factory=lambda: list(DEFAULT_TEMPLATES), min_length=1)
    max_labels: int = Field(2, ge=1, description="labels per frame from this category")
    terms: list[Term] = Field(min_length=1)

    @field_validator("templates")
    @classmethod
    def _has_placeholder(cls, values: list[str]) -> list[str]:
        for template in values:
            if template.count("{term}") != 1:
                raise ValueError(f"template {template!r} must contain '{{term}}' exactly once")
        return values


class Ontology(BaseModel):
    """The whole vocabulary; every term and synonym is unique across all categories."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    version: str = Field(pattern=r"^\d+\.\d+(\.\d+)?$")
    categories: list[Category] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Ontology:
        names = [c.name for c in self.categories]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate category names in {names}")
        seen: dict[str, str] = {}
        for category in self.categories:
            for term in category.terms:
                for word in (term.term, *term.synonyms):
                    if word in seen:
                        raise ValueError(
                            f"{word!r} appears twice: in {seen[word]} and {category.name}/"
                            f"{term.term}"
                        )
                    seen[word] = f"{category.name}/{term.term}"
        return self

    def terms(self) -> list[tuple[str, str]]:
        """(category, term) for every term, in file order."""
        return [(c.name, t.term) for c in self.categories for t in c.terms]

    def category(self, name: str) -> Category:
        for category in self.categories:
            if category.name == name:
                return category
        raise KeyError(f"no category {name!r} in ontology {self.name}")


def load_ontology(path: str | Path) -> Ontology:
    """Read and validate an ontology JSON file (errors name the file)."""
    path = Path(path)
    try:
        return Ontology.model_validate_json(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: invalid ontology: {err}") from err


def export_schema(out_dir: str | Path) -> Path:
    """Write ``Ontology.schema.json`` into ``out_dir``; returns its path."""
    out = Path(out_dir) / "Ontology.schema.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(Ontology.model_json_schema(), indent=2, sort_keys=True) + "\n")
    return out


def term_prompts(category: Category, term: Term) -> list[str]:
    """Every template filled with the term and each synonym."""
    return [t.format(term=word) for word in (term.term, *term.synonyms) for t in category.templates]


@dataclass
class LabelBank:
    """Unit text embeddings (n_terms, dim) with the (category, term) of each row."""

    labels: list[tuple[str, str]]
    embeddings: np.ndarray


def build_label_bank(ontology: Ontology, encode: Callable[[list[str]], np.ndarray]) -> LabelBank:
    """Embed all prompts with ``encode`` (texts -> unit rows) and average them per term."""
    prompts, owner = [], []
    for category in ontology.categories:
        for term in category.terms:
            texts = term_prompts(category, term)
            prompts += texts
            owner += [(category.name, term.term)] * len(texts)
    vectors = np.asarray(encode(prompts), dtype=np.float32)
    labels = ontology.terms()
    index = {label: i for i, label in enumerate(labels)}
    sums = np.zeros((len(labels), vectors.shape[1]), dtype=np.float64)
    np.add.at(sums, [index[o] for o in owner], vectors)
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return LabelBank(labels, sums.astype(np.float32))


def zero_shot_labels(
    image_emb: np.ndarray, text_emb: np.ndarray, terms: Sequence[str], top_k: int = 3
) -> list[list[tuple[str, float]]]:
    """Per image, the ``top_k`` terms by cosine similarity (best first, ties by term order).

    ``image_emb`` (n, d) and ``text_emb`` (t, d) must be L2-normalised; ``terms`` names
    the rows of ``text_emb``.
    """
    image_emb = np.atleast_2d(np.asarray(image_emb, dtype=np.float32))
    text_emb = np.atleast_2d(np.asarray(text_emb, dtype=np.float32))
    if text_emb.shape[0] != len(terms):
        raise ValueError(f"{text_emb.shape[0]} text embeddings for {len(terms)} terms")
    if image_emb.shape[1] != text_emb.shape[1]:
        raise ValueError(f"dims differ: images {image_emb.shape[1]}, texts {text_emb.shape[1]}")
    if top_k < 1:
        raise ValueError("top_k must be >= 1")
    sims = image_emb @ text_emb.T
    k = min(top_k, len(terms))
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return [[(terms[j], float(sims[i, j])) for j in row] for i, row in enumerate(order)]


def zero_shot_by_category(image_emb: np.ndarray, bank: LabelBank, ontology: Ontology):
    """Per image, ``{category: [(term, score), ...]}`` with each category's ``max_labels``."""
    out: list[dict[str, list[tuple[str, float]]]] = [{} for _ in range(len(image_emb))]
    for category in ontology.categories:
        rows = [i for i, (c, _) in enumerate(bank.labels) if c == category.name]
        names = [bank.labels[i][1] for i in rows]
        picks = zero_shot_labels(image_emb, bank.embeddings[rows], names, category.max_labels)
        for image, labels in zip(out, picks, strict=True):
            image[category.name] = labels
    return out
