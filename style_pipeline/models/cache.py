"""Model cache folders written atomically (no half model survives a crash), and weight digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def building_dir(out_dir: Path, marker: str) -> Iterator[Path]:
    """Yield a temp folder beside ``out_dir``; on success it is renamed to ``out_dir``.

    When another process finished the same build first (``out_dir/marker`` exists), its
    copy is kept: builds are deterministic, so the two are identical. The temp folder is
    always removed.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    # mkdtemp makes the folder 0700; the renamed cache must follow the umask like any other
    # folder, so a server or trainer running as another user can read the model.
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        try:
            os.replace(tmp, out_dir)
        except OSError:
            if not (out_dir / marker).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _umask() -> int:
    """The process umask (reading it means setting it: set it straight back)."""
    current = os.umask(0o022)
    os.umask(current)
    return current


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a weights file (streamed), which names a tiny or local model's id."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()
