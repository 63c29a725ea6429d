"""Write one benchmark's section of docs/benchmarks.md, leaving every other section alone."""

from __future__ import annotations

from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(heading: str, text: str, path: Path = DOCS) -> None:
    """Replace the ``## heading`` section (up to the next ``## ``) with ``text``, or append it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = path.read_text() if path.exists() else "# Benchmarks\n"
    start = doc.find(heading + "\n")
    if start < 0:
        doc = doc.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        nxt = doc.find("\n## ", start + len(heading))
        rest = "" if nxt < 0 else doc[nxt:]
        doc = doc[:start] + text.rstrip("\n") + "\n" + rest
    path.write_text(doc)
