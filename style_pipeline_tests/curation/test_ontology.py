"""Ontology: the shipped vocabulary, validation, JSON Schema export and zero-shot labels."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from style_pipeline.contracts.curation import Category, Ontology, Term
from style_pipeline.contracts.models import ModelConfig
from style_pipeline.curation.embeddings import embed_texts
from style_pipeline.curation.ontology import (
    build_label_bank,
    export_schema,
    load_ontology,
    term_prompts,
    zero_shot_by_category,
    zero_shot_labels,
)
from style_pipeline.models import load_model
from style_pipeline.paths import PROJECT_ROOT

ONTOLOGY = PROJECT_ROOT / "data" / "ontology.json"
SCHEMA = PROJECT_ROOT / "style_pipeline" / "contracts" / "schemas" / "Ontology.schema.json"


def _minimal(**category) -> dict:
    base = {"name": "lighting", "terms": [{"term": "golden hour"}, {"term": "neon lights"}]}
    return {"name": "t", "version": "1.0", "categories": [{**base, **category}]}


def fake_encode(texts: list[str]) -> np.ndarray:
    """Deterministic unit vectors from text hashes (stands in for a text encoder)."""
    rows = [np.frombuffer(hashlib.sha256(t.encode()).digest(), dtype=np.uint8)[:16] for t in texts]
    x = np.asarray(rows, dtype=np.float32) - 127.5
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_shipped_ontology_is_valid_and_covers_the_facets():
    ontology = load_ontology(ONTOLOGY)
    names = {c.name for c in ontology.categories}
    assert {"subject", "setting", "lighting", "composition", "color", "style"} <= names
    assert all(len(c.terms) >= 5 for c in ontology.categories)
    assert len(ontology.terms()) == len(set(t for _, t in ontology.terms()))


def test_exported_schema_is_up_to_date(tmp_path):
    fresh = export_schema(tmp_path)
    assert json.loads(fresh.read_text()) == json.loads(SCHEMA.read_text())
    assert json.loads(fresh.read_text())["title"] == "Ontology"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"terms": []}, "at least 1"),
        ({"terms": [{"term": "neon"}, {"term": "neon"}]}, "appears twice"),
        ({"terms": [{"term": "neon", "synonyms": ["glow"]}, {"term": "glow"}]}, "appears twice"),
        ({"terms": [{"term": "Neon"}]}, "pattern"),
        ({"terms": [{"term": "neon", "synonyms": [" "]}]}, "must not be empty"),
        ({"templates": ["a photo"]}, "exactly once"),
        ({"templates": []}, "at least 1"),
        ({"name": "Lighting"}, "pattern"),
    ],
)
def test_invalid_ontologies_are_rejected(change, message):
    with pytest.raises(ValueError, match=message):
        Ontology.model_validate(_minimal(**change))


def test_duplicate_category_and_cross_category_terms_are_rejected():
    data = _minimal()
    data["categories"].append({"name": "lighting", "terms": [{"term": "daylight"}]})
    with pytest.raises(ValueError, match="duplicate category"):
        Ontology.model_validate(data)
    data["categories"][1] = {"name": "mood", "terms": [{"term": "golden hour"}]}
    with pytest.raises(ValueError, match="appears twice"):
        Ontology.model_validate(data)


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "ontology.json"
    bad.write_text('{"name": "x", "version": "one", "categories": []}')
    with pytest.raises(ValueError, match=str(bad)):
        load_ontology(bad)


def test_term_prompts_cover_synonyms():
    category = Category(name="lighting", templates=["a photo with {term}."], terms=[Term(term="x")])
    term = Term(term="golden hour", synonyms=["sunset light"])
    assert term_prompts(category, term) == [
        "a photo with golden hour.",
        "a photo with sunset light.",
    ]


@pytest.mark.parametrize("top_k", [1, 2, 5])
def test_zero_shot_labels_rank_by_similarity(top_k):
    text = np.eye(4, dtype=np.float32)
    image = np.array([[0.1, 0.9, 0.3, 0.0], [0.7, 0.0, 0.0, 0.7]], dtype=np.float32)
    labels = zero_shot_labels(image, text, ["a", "b", "c", "d"], top_k)
    assert [lab[0] for lab in labels[0]] == ["b", "c", "a", "d"][: min(top_k, 4)]
    assert [lab[0] for lab in labels[1]][: min(top_k, 2)] == ["a", "d"][: min(top_k, 2)]
    assert labels[0][0][1] == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("image", "text", "terms", "top_k", "message"),
    [
        (np.ones((1, 3)), np.eye(4), ["a", "b", "c", "d"], 1, "dims differ"),
        (np.ones((1, 4)), np.eye(4), ["a"], 1, "4 text embeddings for 1 terms"),
        (np.ones((1, 4)), np.eye(4), ["a", "b", "c", "d"], 0, "top_k"),
    ],
)
def test_zero_shot_input_errors(image, text, terms, top_k, message):
    with pytest.raises(ValueError, match=message):
        zero_shot_labels(image, text, terms, top_k)


def test_label_bank_averages_prompts_per_term():
    ontology = Ontology.model_validate(_minimal())
    bank = build_label_bank(ontology, fake_encode)
    assert bank.labels == [("lighting", "golden hour"), ("lighting", "neon lights")]
    category = ontology.categories[0]
    expected = fake_encode(term_prompts(category, category.terms[0])).mean(axis=0)
    np.testing.assert_allclose(bank.embeddings[0], expected / np.linalg.norm(expected), atol=1e-6)
    per_image = zero_shot_by_category(bank.embeddings[1:], bank, ontology)
    assert per_image[0]["lighting"][0][0] == "neon lights"
    assert len(per_image[0]["lighting"]) == category.max_labels


def test_label_bank_with_the_tiny_clip_model(tmp_path):
    loaded = load_model(ModelConfig(profile="tiny", cache_dir=str(tmp_path)))
    ontology = load_ontology(ONTOLOGY)
    bank = build_label_bank(ontology, lambda texts: embed_texts(loaded, texts))
    assert bank.embeddings.shape == (len(ontology.terms()), loaded.dim)
    np.testing.assert_allclose(np.linalg.norm(bank.embeddings, axis=1), 1.0, atol=1e-5)
    labels = zero_shot_by_category(bank.embeddings[:2], bank, ontology)
    assert set(labels[0]) == {c.name for c in ontology.categories}
    assert labels[0]["subject"][0][0] == ontology.categories[0].terms[0].term
