"""Bearer-token guard for write actions and generation; loopback-only without a token."""

from __future__ import annotations

import hmac
import ipaddress
import os

from fastapi import Header, HTTPException, Request

from style_pipeline.contracts.serving import ServingSettings


class UnsafeBindError(RuntimeError):
    """Refusing to listen on a non-loopback address without an API token."""


def api_token(settings: ServingSettings) -> str | None:
    """The configured token (``settings.token_env``), or None when unset or blank."""
    value = os.environ.get(settings.token_env, "").strip()
    return value or None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a hostname or 0.0.0.0-style wildcard: treat as reachable from outside


def check_bind(settings: ServingSettings, host: str) -> None:
    """Raise ``UnsafeBindError`` when ``host`` is not loopback and no token is set."""
    if not is_loopback(host) and api_token(settings) is None:
        raise UnsafeBindError(
            f"refusing to serve on {host} without an API token: set ${settings.token_env} "
            "(write actions and generation then require 'Authorization: Bearer <token>'), "
            "or listen on 127.0.0.1"
        )


def require_token(request: Request, authorization: str | None = Header(None)) -> None:
    """FastAPI dependency: the request must carry the configured bearer token.

    Without a configured token (allowed on loopback only) write actions are open to local
    users. The comparison is constant-time and the token is never echoed.
    """
    settings: ServingSettings = request.app.state.serving
    expected = api_token(settings)
    if expected is None:
        return
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), expected):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
