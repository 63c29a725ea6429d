"""The ontology stage: a validated snapshot whose stored JSON keeps the document's shape."""

from __future__ import annotations

import hashlib
import json

import pytest

from style_pipeline.contracts.curation import CurationSettings, OntologySnapshot
from style_pipeline.curation.ontology import load_ontology
from style_pipeline.paths import resolve_local
from style_pipeline.stages.ontology import snapshot_ontology


def test_snapshot_of_the_shipped_ontology():
    snapshot, facts = snapshot_ontology(CurationSettings())
    path = resolve_local(CurationSettings().ontology_path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    model = load_ontology(path)
    assert snapshot == OntologySnapshot(path=str(path), sha256=sha256, ontology=model)
    assert (facts.categories, facts.terms, facts.sha256) == (
        len(model.categories),
        len(model.terms()),
        sha256,
    )
    # the stored document is {path, sha256, ontology}: consumers read doc["ontology"]
    stored = json.loads(json.dumps(snapshot.model_dump(mode="json")))
    assert stored == {
        "path": str(path),
        "sha256": sha256,
        "ontology": model.model_dump(mode="json"),
    }
    assert OntologySnapshot.model_validate(stored) == snapshot


def test_an_invalid_file_names_itself(tmp_path):
    bad = tmp_path / "ontology.json"
    bad.write_text('{"name": "x"}')
    with pytest.raises(ValueError, match="ontology.json: invalid ontology"):
        snapshot_ontology(CurationSettings(ontology_path=str(bad)))
