"""One storage root addressed by keys such as ``frames/2026-11-21/ab12.jpg``.

The same code serves a local directory, ``memory://`` and ``s3://bucket/prefix`` through
universal-pathlib. Writes are atomic: locally a temp file in the target directory is
renamed into place; on object stores a single PUT is atomic per object. Local files are
created with mode ``0o666`` and directories ``0o777``, both less the process umask (so
``0644`` / ``0755`` under the usual ``022``): a web server or trainer running as another
user can read what the pipeline stored unless the operator's umask says otherwise. A
writer killed mid-write leaves a temp file named after itself; the next write into that
folder on the same host removes it. A failed S3 upload is aborted, never left open.

S3 errors for a missing bucket, refused credentials or an unreachable endpoint are
re-raised as ``OSError`` subclasses naming the bucket, the storage root, the endpoint and
the credential source (never the secret): see ``storage.s3_errors``.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

from fsspec.spec import AbstractBufferedFile
from upath import UPath

from style_pipeline.processes import pid_alive
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


# Temp files name their writer (host tag and pid) so a later writer on the same host can
# tell a leftover of a killed process from a write in progress.
_HOST_TAG = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_TEMP_NAME = re.compile(r"^\..+\.([0-9a-f]{8})-(\d+)-[0-9a-f]+\.tmp$")
_swept_dirs: set[Path] = set()


def temp_name(target_name: str, pid: int, token: str) -> str:
    """The name of a temp file written beside ``target_name`` by process ``pid`` here."""
    return f".{target_name}.{_HOST_TAG}-{pid}-{token}.tmp"


def sweep_stale_temps(directory: Path) -> list[Path]:
    """Remove temp files in ``directory`` left by dead writers of this host; return them.

    A writer killed between creating its temp file and renaming it (kill -9, power loss)
    leaves ``.<name>.<host>-<pid>-<token>.tmp``; a re-run writes the same keys, and its
    first write into the directory removes what dead processes of this host left there.
    Temp files of live processes, and of other hosts sharing the folder, are left alone.
    """
    removed = []
    with contextlib.suppress(FileNotFoundError):
        for entry in os.scandir(directory):
            match = _TEMP_NAME.match(entry.name)
            if match is None or match.group(1) != _HOST_TAG:
                continue
            if not pid_alive(int(match.group(2))):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def _open_temp_beside(target: Path) -> tuple[int, Path]:
    """A new, empty temp file in ``target``'s directory, opened for writing.

    ``tempfile.mkstemp`` creates files ``0600`` whatever the umask, and ``os.replace`` keeps
    that mode on the final file; opening with ``0o666`` lets the kernel apply the umask.
    The first write into a directory in this process sweeps dead writers' leftovers.
    """
    if target.parent not in _swept_dirs:
        sweep_stale_temps(target.parent)
        _swept_dirs.add(target.parent)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = target.parent / temp_name(target.name, os.getpid(), secrets.token_hex(6))
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


def _upload(src: BinaryIO, target: UPath) -> None:
    """Stream ``src`` to an object; a failed upload is aborted, never left half done.

    fsspec's file ``__exit__`` calls ``close()`` even when the copy failed, which retries
    the upload and never aborts the multipart upload it started (S3 keeps, and bills, its
    parts until a lifecycle rule reaps them). ``discard()`` aborts it.
    """
    dst = target.open("wb")
    try:
        shutil.copyfileobj(src, dst, _CHUNK)
        dst.close()
    except BaseException:
        if isinstance(dst, AbstractBufferedFile):
            with contextlib.suppress(Exception):  # the link may still be down: keep the cause
                dst.discard()
            # Closed, so that garbage collection (fsspec's __del__ calls close()) can never
            # complete the upload with what was buffered: no truncated object, ever.
            dst.closed = True
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
            with s3_errors_explained(self.root), open(source, "rb") as src:
                _upload(src, target)
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
