"""Streaming sha256 of files: constant memory for any size."""

from __future__ import annotations

import hashlib
import os

CHUNK_BYTES = 1024 * 1024


def sha256_file(path: str | os.PathLike, chunk_bytes: int = CHUNK_BYTES) -> str:
    """Hex sha256 of the file at ``path``, read in ``chunk_bytes`` chunks."""
    if chunk_bytes <= 0:
        raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
    digest = hashlib.sha256()
    buffer = bytearray(chunk_bytes)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as handle:
        while n := handle.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of an in-memory buffer (same digest as ``sha256_file`` of those bytes)."""
    return hashlib.sha256(data).hexdigest()
