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

from style_pipeline.contracts.curation import Category, Ontology, Term


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
