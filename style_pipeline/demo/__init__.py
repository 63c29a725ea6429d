"""Sample-media generators for the demo and the tests (not imported by the pipeline)."""
