"""The ``ontology`` stage: a validated snapshot of the controlled vocabulary in force that day.

Reads ``curation.ontology_path`` (relative paths resolve against the project root),
validates it and records the file's sha256, so every day's captions and labels can be
traced to the exact vocabulary that made them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from style_pipeline.contracts.curation import CurationSettings, OntologySnapshot
from style_pipeline.curation.ontology import load_ontology
from style_pipeline.paths import resolve_local


@dataclass(frozen=True)
class OntologyFacts:
    """What the ``ontology`` asset reports besides the document."""

    categories: int
    terms: int
    sha256: str


def snapshot_ontology(config: CurationSettings) -> tuple[OntologySnapshot, OntologyFacts]:
    """The day's ``ontology`` document (path, sha256, vocabulary) and facts."""
    path = resolve_local(config.ontology_path)
    model = load_ontology(path)
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    snapshot = OntologySnapshot(path=str(path), sha256=sha256, ontology=model)
    facts = OntologyFacts(len(model.categories), len(model.terms()), sha256)
    return snapshot, facts
