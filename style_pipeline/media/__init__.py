"""Media domain: drop-folder scanning, validation, checksums, probing, frame extraction."""
