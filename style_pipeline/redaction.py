"""Remove credentials from text before it becomes an error, a log line or metadata.

One function, :func:`redact`, for every remote client and every place that turns a
remote answer, an error or a URL into text a person or the Dagster instance keeps. It
removes URL user info, ``Authorization`` values, ``Bearer``/``Basic`` credentials,
``name=value`` pairs whose name says secret (``api_key``, ``token``, ``password``, ...),
well-known key shapes (``sk-...``, ``hf_...``, GitHub and Slack tokens, AWS access key
ids and secret keys) and the exact value of any API-key environment variable named by
the caller or listed in :data:`SECRET_ENV`. Pure standard library, importing nothing of
ours, so every layer may use it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import quote

MASK = "***"
# Secrets read from these variables by the libraries we use (boto3, huggingface_hub, the
# endpoint default) are masked even when the caller names no variable.
SECRET_ENV = (
    "OPENAI_API_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)
# Shorter values are not masked by exact match: a 1-3 character "key" (a test's "k")
# would blank every occurrence of that letter and hide the message it was meant to protect.
MIN_EXACT_LENGTH = 4

_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@'\"<>]+@")
_AUTH_HEADER = re.compile(
    r"(?P<name>\b(?:proxy-)?authorization\b[\"']?\s*[:=]\s*[\"']?)[^\"'\r\n,}]+", re.IGNORECASE
)
_SCHEME_CREDENTIAL = re.compile(
    r"(?P<name>\bBearer\s+)[A-Za-z0-9._~+/=-]+|(?P<basic>\bBasic\s+)[A-Za-z0-9+/=]{8,}",
    re.IGNORECASE,
)
# `name: value` / `name=value` / `"name": "value"` where the name says secret. The name
# must end on the keyword, so `max_tokens` or `monkey` are left alone.
_SECRET_NAMES = (
    r"api[_-]?key|apikey|access[_-]?key(?:[_-]?id)?|secret(?:[_-]?access)?(?:[_-]?key)?"
    r"|client[_-]?secret|private[_-]?key|password|passwd|pwd|credentials?|token"
)
_NAMED_SECRET = re.compile(
    r"(?P<name>(?<![A-Za-z0-9])(?:[A-Za-z0-9]+[_-])*(?:" + _SECRET_NAMES + r")"
    r"(?![A-Za-z0-9_-])[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;<>}\]]+",
    re.IGNORECASE,
)
_KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9])(?P<prefix>sk-|rk-|hf_|ghp_|gho_|ghs_|ghu_|github_pat_|xox[abprs]-)"
    r"[A-Za-z0-9_-]{8,}"
)
_AWS_ACCESS_KEY_ID = re.compile(r"\b(?P<prefix>AKIA|ASIA)[A-Z0-9]{16}\b")
# A secret access key is 40 base64 characters. Hex digests (git, sha1) are lower-case
# only, so demanding an upper-case letter, a lower-case letter and a digit spares them.
_AWS_SECRET = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]{0,39}[A-Z])(?=[A-Za-z0-9/+]{0,39}[a-z])"
    r"(?=[A-Za-z0-9/+]{0,39}[0-9])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)


def _secret_values(env_names: Iterable[str | None]) -> list[str]:
    values: set[str] = set()
    for name in (*SECRET_ENV, *env_names):
        value = os.environ.get(name) if name else None
        if value and len(value) >= MIN_EXACT_LENGTH:
            values.update({value, quote(value, safe="")})
    return sorted(values, key=len, reverse=True)  # longest first: no partial leftovers


def redact(text: object, env_names: Iterable[str | None] = ()) -> str:
    """``str(text)`` with every credential replaced by ``***``.

    ``env_names`` names environment variables whose exact values are secrets (the
    configured ``api_key_env``); :data:`SECRET_ENV` is always included.
    """
    out = str(text)
    for value in _secret_values(env_names):
        out = out.replace(value, MASK)
    out = _URL_USERINFO.sub(rf"\g<scheme>{MASK}@", out)
    out = _AUTH_HEADER.sub(rf"\g<name>{MASK}", out)
    out = _SCHEME_CREDENTIAL.sub(lambda m: (m["name"] or m["basic"]) + MASK, out)
    out = _NAMED_SECRET.sub(rf"\g<name>{MASK}", out)
    out = _KEY_SHAPES.sub(rf"\g<prefix>{MASK}", out)
    out = _AWS_ACCESS_KEY_ID.sub(rf"\g<prefix>{MASK}", out)
    return _AWS_SECRET.sub(MASK, out)


def has_userinfo(url: str) -> bool:
    """Whether ``url`` carries ``user[:password]@`` before its host."""
    rest = url.split("://", 1)[1] if "://" in url else url
    return "@" in re.split(r"[/?#]", rest, maxsplit=1)[0]
