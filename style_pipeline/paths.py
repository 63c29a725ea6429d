"""Project root and path resolution (dependency-free, importable from anywhere)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def resolve_local(path: str) -> Path:
    """A local path; relative paths hang off the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p)


def resolve_root(root: str) -> str:
    """A storage root URL as is; a local path made absolute against the project root."""
    return root if "://" in root else str(resolve_local(root))


DEFAULT_MODEL_DIR = "data/models"  # every model cache hangs off this (relative: project root)
