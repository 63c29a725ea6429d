"""Curation core: perceptual hashes and the dedup index, quality metrics and the quality gate,
faces, embeddings, clustering, selection and the ontology. Plain Python, no Dagster."""
