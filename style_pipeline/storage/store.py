"""One storage root addressed by keys such as ``frames/2026-11-21/ab12.jpg``.

The same code serves a local directory, ``memory://`` and ``s3://bucket/prefix`` through
universal-pathlib. Writes are atomic: locally a temp file in the target directory is
renamed into place; on object stores a single PUT is atomic per object. Local files are
created with mode ``0o666`` and directories ``0o777``, both less the process umask (so
``0644`` / ``0755`` under the usual ``022``): a web server or trainer running as another
user can read what the pipeline stored unless the operator's umask says otherwise.

S3 errors for a missing bucket, refused credentials or an unreachable endpoint are
re-raised as ``OSError`` subclasses naming the bucket, the storage root, the endpoint and
the credential source (never the secret): see ``storage.s3_errors``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from upath import UPath

from style_pipeline.storage.s3_errors import s3_errors_explained

_CHUNK = 8 * 1024 * 1024


def storage_options_from_env(root: str) -> dict[str, Any]:
    """fsspec options for ``root``: an S3 endpoint from ``AWS_ENDPOINT_URL(_S3)`` if set."""
    if not root.startswith("s3://"):
        return {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return {"client_kwargs": {"endpoint_url": endpoint}} if endpoint else {}


def make_upath(root: str, **storage_options: Any) -> UPath:
    """A UPath for ``root`` with storage options from the environment unless given."""
    options = storage_options or storage_options_from_env(root)
    path: UPath = UPath(root, **options)
    return path


def check_key(key: str) -> str:
    """Reject keys that would leave the root (absolute, ``..``, empty parts, backslashes)."""
    if not key or key.startswith("/") or "\\" in key or "\x00" in key:
        raise ValueError(f"invalid storage key {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise ValueError(f"storage key escapes its root: {key!r}")
    return key


def is_local_path(path: UPath) -> bool:
    return path.protocol in ("", "file", "local")


def _open_temp_beside(target: Path) -> tuple[int, Path]:
    """A new, empty temp file in ``target``'s directory, opened for writing.

    ``tempfile.mkstemp`` creates files ``0600`` whatever the umask, and ``os.replace`` keeps
    that mode on the final file; opening with ``0o666`` lets the kernel apply the umask.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue  # a 48-bit name collision: draw again
    raise FileExistsError(f"no free temp name beside {target} after 100 tries")


def atomic_write_bytes(path: UPath, data: bytes, root: UPath | None = None) -> None:
    """Write ``data`` to ``path`` so readers never see a partial file.

    Local: a temp file beside the target (mode ``0o666`` less the umask), then
    ``os.replace``. Object stores: one PUT, which is atomic per object. ``root`` (the
    storage root ``path`` lies under) is named in S3 errors.
    """
    if not is_local_path(path):
        with s3_errors_explained(root or path, path):
            path.write_bytes(data)
        return
    target = Path(path.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp_beside(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class Store:
    """Keyed file access under one root; local, memory:// and s3:// alike."""

    def __init__(self, root: str | UPath, **storage_options: Any) -> None:
        self.root = root if isinstance(root, UPath) else make_upath(str(root), **storage_options)

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def is_local(self) -> bool:
        return is_local_path(self.root)

    def path(self, key: str) -> UPath:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path:
        """The OS path of ``key``; only for local roots."""
        if not self.is_local:
            raise ValueError(f"{self} is not a local root")
        return Path(self.path(key).path)

    def exists(self, key: str) -> bool:
        with s3_errors_explained(self.root):
            return self.path(key).exists()

    def read_bytes(self, key: str) -> bytes:
        with s3_errors_explained(self.root):
            return self.path(key).read_bytes()

    def list(self, prefix: str) -> list[str]:
        """Keys of the files directly under ``prefix`` (sorted); [] when it does not exist."""
        base = self.path(prefix)
        with s3_errors_explained(self.root):
            if not base.exists():
                return []
            return sorted(f"{prefix.rstrip('/')}/{p.name}" for p in base.iterdir())

    def delete(self, key: str) -> bool:
        """Remove the file ``key``; True when it existed."""
        path = self.path(key)
        with s3_errors_explained(self.root):
            if self.is_local:
                try:
                    Path(path.path).unlink()
                except FileNotFoundError:
                    return False
                return True
            if not path.exists():
                return False
            path.unlink()
            return True

    def put_bytes(self, data: bytes, key: str) -> str:
        atomic_write_bytes(self.path(key), data, root=self.root)
        return key

    def put_file(self, source: str | os.PathLike[str], key: str) -> str:
        """Copy a local file to ``key`` atomically (streaming, any size)."""
        target = self.path(key)
        if self.is_local:
            with self._atomic_local(key) as tmp:
                shutil.copyfile(source, tmp)  # copies bytes only: tmp keeps its umask mode
        else:
            with (
                s3_errors_explained(self.root),
                open(source, "rb") as src,
                target.open("wb") as dst,
            ):
                shutil.copyfileobj(src, dst, _CHUNK)
        return key

    def put_immutable(self, source: str | os.PathLike[str], key: str) -> bool:
        """Copy ``source`` to ``key`` unless it exists already; True when it was written.

        Used for content-addressed objects: the key names the content, so an existing
        object is never overwritten.
        """
        if self.exists(key):
            return False
        self.put_file(source, key)
        return True

    @contextlib.contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        """A local filesystem path holding ``key``'s bytes (the file itself when local)."""
        if self.is_local:
            yield self.local_path(key)
            return
        suffix = PurePosixPath(key).suffix
        with tempfile.TemporaryDirectory(prefix="style_pipeline_") as tmp:
            local = Path(tmp) / f"object{suffix}"
            with (
                s3_errors_explained(self.root),
                self.path(key).open("rb") as src,
                open(local, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, _CHUNK)
            yield local

    @contextlib.contextmanager
    def local_copies(self, keys: builtins.list[str]) -> Iterator[dict[str, Path]]:
        """``{key: local path}`` for many keys at once (one temp dir for remote roots)."""
        if self.is_local:
            yield {key: self.local_path(key) for key in keys}
            return
        with tempfile.TemporaryDirectory(prefix="style_pipeline_") as tmp:
            out: dict[str, Path] = {}
            for i, key in enumerate(keys):
                local = Path(tmp) / f"{i:07d}{PurePosixPath(key).suffix}"
                with (
                    s3_errors_explained(self.root),
                    self.path(key).open("rb") as src,
                    open(local, "wb") as dst,
                ):
                    shutil.copyfileobj(src, dst, _CHUNK)
                out[key] = local
            yield out

    @contextlib.contextmanager
    def _atomic_local(self, key: str) -> Iterator[Path]:
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_path = _open_temp_beside(target)
        os.close(fd)
        try:
            yield tmp_path
            os.replace(tmp_path, target)
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise
