"""The ontology seen from captioning: allowed phrases, category listings, tokenizer words."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from style_pipeline.captioning.validation import STOPWORDS, Vocabulary
from style_pipeline.contracts.curation import Ontology
from style_pipeline.curation.ontology import load_ontology
from style_pipeline.paths import PROJECT_ROOT

DEFAULT_ONTOLOGY = PROJECT_ROOT / "data" / "ontology.json"


def load_default_ontology(path: str | Path | None = None) -> Ontology:
    """The ontology at ``path``, default ``data/ontology.json`` in the project."""
    return load_ontology(path or DEFAULT_ONTOLOGY)


def ontology_vocabulary(ontology: Ontology) -> Vocabulary:
    """Canonical terms and their synonyms, for :func:`validate_caption`."""
    terms = [t.term for c in ontology.categories for t in c.terms]
    synonyms = {t.term: t.synonyms for c in ontology.categories for t in c.terms}
    return Vocabulary.build(terms, synonyms)


def ontology_categories(ontology: Ontology) -> dict[str, list[str]]:
    """``category -> canonical terms`` in file order (instruction listing, template order)."""
    return {c.name: [t.term for t in c.terms] for c in ontology.categories}


def caption_words(ontology: Ontology, stopwords: Iterable[str] = STOPWORDS) -> list[str]:
    """Every single word of the terms, synonyms and stop words, sorted (tiny BLIP vocab)."""
    vocabulary = ontology_vocabulary(ontology)
    return sorted({w for phrase in vocabulary.phrases | set(stopwords) for w in phrase.split()})
