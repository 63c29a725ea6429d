"""One storage root addressed by keys such as ``frames/2026-11-21/ab12.jpg``.

The same code serves a local directory, ``memory://`` and ``s3://bucket/prefix`` through
universal-pathlib. Writes are atomic: locally a temp file in the target directory is
renamed into place; on object stores a single PUT is atomic per object. Local files are
created with mode ``0o666`` and directories ``0o777``, both less the process umask (so
``0644`` / ``0755`` under the usual ``022``): a web server or trainer running as another
user can read what the pipeline stored unless the operator's umask says otherwise.

S3 errors for a missing bucket, refused credentials or an unreachable endpoint are
re-raised as ``OSError`` subclasses (``FileNotFoundError`` / ``PermissionError`` /
``ConnectionError``) naming the bucket, the storage root, the endpoint and where botocore
found the credentials (never the secret): see ``explain_s3_error``.
"""

from __future__ import annotations

import builtins
import contextlib
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from upath import UPath

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


class StorageBucketMissing(FileNotFoundError):
    """The S3 bucket of the storage root does not exist (reason code ``bucket_missing``)."""

    reason = "bucket_missing"


class StorageAccessDenied(PermissionError):
    """S3 refused the request or no credentials were found (reason code ``access_denied``)."""

    reason = "access_denied"


class StorageUnreachable(ConnectionError):
    """The S3 endpoint could not be reached or timed out (reason ``endpoint_unreachable``)."""

    reason = "endpoint_unreachable"


# S3 error codes (as s3fs leaves them on ``__cause__``) that mean "wrong or no credentials /
# no permission" rather than "this key is missing". "403" is what a HEAD answers: no body.
_ACCESS_CODES = frozenset(
    {
        "403",
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
# botocore's ``Credentials.method`` values, said the way a person configures them.
_CREDENTIAL_METHODS = {
    "env": "environment variables (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    "shared-credentials-file": "shared credentials file (~/.aws/credentials)",
    "config-file": "AWS config file (~/.aws/config)",
    "custom-process": "credential_process in the AWS config",
    "assume-role": "assume-role profile",
    "assume-role-with-web-identity": "web identity token (AWS_WEB_IDENTITY_TOKEN_FILE)",
    "sso": "AWS SSO profile",
    "container-role": "container role (ECS/EKS credentials endpoint)",
    "iam-role": "instance role (EC2 instance metadata)",
    "boto-config": "boto2 config file",
    "explicit": "explicit keys",
}


def _s3_code(exc: BaseException) -> str | None:
    """The S3 error code behind an s3fs exception (s3fs keeps botocore's on ``__cause__``)."""
    for err in (exc, exc.__cause__):
        response = getattr(err, "response", None)
        if isinstance(response, Mapping):
            code = response.get("Error", {}).get("Code")
            if code:
                return str(code)
    return None


def _botocore_errors() -> Any:
    """``botocore.exceptions``, imported only on the S3 error path (local roots never load it;
    botocore ships no type information, hence ``Any``)."""
    import botocore.exceptions  # type: ignore[import-untyped]

    return botocore.exceptions


def _mask(key_id: str) -> str:
    """An access key id reduced to its last four characters (enough to tell keys apart)."""
    return f"…{key_id[-4:]}" if len(key_id) > 4 else "…"


def credential_source(storage_options: Mapping[str, Any] | None = None) -> str:
    """Where S3 credentials come from, in words, as botocore's provider chain resolves them.

    Names the provider (``env``, ``shared-credentials-file``, ``iam-role``...) and profile,
    and at most the last four characters of the access key id; never the secret.
    """
    options = storage_options or {}
    if options.get("anon"):
        return "anonymous (anon=True in the storage options)"
    if options.get("key") or options.get("secret"):
        return f"storage options key/secret (access key id {_mask(str(options.get('key')))})"
    profile = options.get("profile") or os.environ.get("AWS_PROFILE")
    import botocore.session  # type: ignore[import-untyped]

    try:
        session = botocore.session.Session(profile=profile)
        creds = session.get_credentials()
    except _botocore_errors().BotoCoreError as exc:  # e.g. ProfileNotFound
        return f"profile {profile!r}, unusable: {exc}"
    where = f" (profile {profile!r})" if profile else ""
    if creds is None:
        return (
            "none found: no environment variables, credentials file, profile or instance "
            f"role{where}"
        )
    method = _CREDENTIAL_METHODS.get(creds.method, creds.method)
    return f"{method}{where}, access key id {_mask(creds.access_key or '')}"


def _endpoint(path: UPath) -> str:
    kwargs = path.storage_options.get("client_kwargs") or {}
    endpoint = kwargs.get("endpoint_url") or path.storage_options.get("endpoint_url")
    return str(endpoint) if endpoint else "AWS default"


def describe_s3_error(
    code: str | None, detail: str, bucket: str, root: str, endpoint: str, credentials: str
) -> str:
    """The message for an S3 error: what went wrong, on which bucket and root, with whose
    credentials, then the server's own words (a pure function: tests check it directly)."""
    where = f"storage root {root}, endpoint {endpoint}, credentials from {credentials}"
    if code == "unreachable":
        return (
            f"endpoint_unreachable: S3 endpoint {endpoint} did not answer for bucket "
            f"{bucket!r} ({where}); check AWS_ENDPOINT_URL and the network [{detail}]"
        )
    if code == "NoSuchBucket":
        return (
            f"bucket_missing: S3 bucket {bucket!r} does not exist ({where}); create it or "
            f"fix STYLE_PIPELINE_STORAGE [{code}: {detail}]"
        )
    return (
        f"access_denied: S3 refused access to bucket {bucket!r} ({where}); check the "
        f"credentials and the bucket policy [{code or 'no credentials'}: {detail}]"
    )


def _url(path: UPath) -> str:
    return f"{path.protocol}://{path.path}"


def explain_s3_error(
    exc: BaseException, root: UPath, target: UPath | None = None
) -> OSError | None:
    """``exc`` re-worded for a missing bucket or refused credentials, else ``None``.

    ``root`` is the storage root, ``target`` the object being accessed (named when given).
    The result keeps the exception family (``FileNotFoundError`` / ``PermissionError``) so
    callers that catch those still do; a missing key in an existing bucket is left alone.
    """
    if root.protocol not in ("s3", "s3a"):
        return None
    boto_errors = _botocore_errors()
    code = _s3_code(exc)
    if isinstance(exc, boto_errors.ConnectionError | boto_errors.HTTPClientError):
        code = "unreachable"  # refused, DNS, connect or read timeout: s3fs passes them raw
    no_credentials = isinstance(
        exc, boto_errors.NoCredentialsError | boto_errors.PartialCredentialsError
    )
    if code not in ("NoSuchBucket", "unreachable") and code not in _ACCESS_CODES:
        if not no_credentials:
            return None
    detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    if target is not None and _url(target) != _url(root):
        detail = f"{_url(target)}: {detail}"
    message = describe_s3_error(
        code,
        detail,
        root.path.split("/", 1)[0],
        _url(root),
        _endpoint(root),
        credential_source(root.storage_options),
    )
    if code == "NoSuchBucket":
        return StorageBucketMissing(message)
    if code == "unreachable":
        return StorageUnreachable(message)
    return StorageAccessDenied(message)


@contextlib.contextmanager
def s3_errors_explained(root: UPath, target: UPath | None = None) -> Iterator[None]:
    """Re-raise a missing-bucket or refused-credentials error under ``root`` with its context."""
    try:
        yield
    except (StorageBucketMissing, StorageAccessDenied, StorageUnreachable):
        raise  # already explained by an inner call
    except Exception as exc:  # botocore's credential errors are not OSError; others re-raise
        explained = explain_s3_error(exc, root, target)
        if explained is None:
            raise
        raise explained from exc


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
