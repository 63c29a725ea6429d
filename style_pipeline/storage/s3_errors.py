"""S3 errors that say what went wrong where: bucket, storage root, endpoint, credential source.

s3fs turns botocore errors into ``FileNotFoundError`` / ``PermissionError`` with the
server's bare words ("The specified bucket does not exist", "Forbidden") and lets
connection and missing-credential errors through as botocore exceptions. Inside
``s3_errors_explained`` those become ``StorageBucketMissing`` / ``StorageAccessDenied`` /
``StorageUnreachable`` (still ``OSError`` subclasses of the same family, each with a reason
code) whose message names the bucket, the root, the endpoint and where botocore's provider
chain found the credentials (env vars, a profile, an instance role...), never the secret.
A missing key in an existing bucket is left as it was: callers treat it as a miss.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from upath import UPath

from style_pipeline.redaction import redact


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
    # Redacted before it is cut: a server or library message may echo a key or a signed URL.
    detail = redact(str(exc).splitlines()[0])[:200] if str(exc) else type(exc).__name__
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
