"""What every OpenAI-compatible endpoint client shares: the key, retries, images, safe text.

Used by the captioner (``captioning/remote.py``) and the pairwise judge
(``curation/judges.py``). :func:`post_with_retries` makes one ``POST`` and retries 429,
5xx, timeouts and connection errors with exponential backoff and full jitter
(``Retry-After`` honoured, every delay capped) at most ``max_attempts`` times; other 4xx
raise :class:`EndpointRefused` at once. Every error text passes through
:func:`style_pipeline.redaction.redact`, so the key never reaches a log or a table.
Light: httpx, Pillow and the standard library only (no model library).
"""

from __future__ import annotations

import base64
import io
import os
import random
from collections.abc import Callable

import httpx
from PIL import Image

from style_pipeline.contracts.captioning import EndpointConfig
from style_pipeline.redaction import redact

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
SNIPPET_CHARS = 200  # of a response body kept in an error
# Redact before cutting to the snippet, so a secret cut in half cannot slip past the
# patterns; this much is scanned (a secret beyond it cannot reach the first 200 chars).
SCAN_CHARS = 4000


class EndpointRefused(RuntimeError):
    """A status that retrying cannot fix (401, 403, 404, 400 ...); ``detail`` is redacted."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class EndpointGaveUp(RuntimeError):
    """Every attempt failed transiently; ``last`` is the last (redacted) error."""

    def __init__(self, attempts: int, last: str):
        super().__init__(f"gave up after {attempts} attempts; last error: {last}")
        self.attempts = attempts
        self.last = last


def snippet(text: object, secret_env: str | None = None) -> str:
    """The first :data:`SNIPPET_CHARS` of ``text`` with credentials redacted."""
    return redact(str(text)[:SCAN_CHARS], [secret_env])[:SNIPPET_CHARS]


def image_data_url(image: Image.Image, max_edge: int) -> str:
    """The image as a JPEG data URL, downscaled so its long edge is at most ``max_edge``."""
    image = image.convert("RGB")
    if max(image.size) > max_edge:
        image = image.copy()
        image.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def backoff_delay(
    retry: int, base: float, cap: float, rng: random.Random, retry_after: float | None = None
) -> float:
    """Full-jitter exponential delay for retry ``retry`` (0-based), at least ``Retry-After``."""
    delay = rng.uniform(0, min(cap, base * 2**retry))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return min(delay, cap)


def retry_after(response: httpx.Response) -> float | None:
    """The ``Retry-After`` header in seconds (None when absent or an HTTP date)."""
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def bearer_headers(endpoint: EndpointConfig) -> dict[str, str]:
    """``Authorization: Bearer <key>`` from ``endpoint.api_key_env`` (none when it is null)."""
    if not endpoint.api_key_env:
        return {}
    key = os.environ.get(endpoint.api_key_env)
    if not key:
        raise ValueError(
            f"environment variable {endpoint.api_key_env} (endpoint.api_key_env) "
            "is not set; set it or set api_key_env to null for keyless endpoints"
        )
    return {"Authorization": f"Bearer {key}"}


def endpoint_client(
    endpoint: EndpointConfig, transport: httpx.BaseTransport | None = None
) -> httpx.Client:
    """An httpx client on ``endpoint.base_url`` with its timeout and bearer key."""
    if not endpoint.configured():
        raise ValueError("endpoint.base_url and endpoint.model must both be set")
    return httpx.Client(
        base_url=str(endpoint.base_url).rstrip("/") + "/",
        timeout=endpoint.timeout_s,
        headers=bearer_headers(endpoint),
        transport=transport,
    )


def post_with_retries(
    client: httpx.Client,
    path: str,
    body: dict,
    endpoint: EndpointConfig,
    *,
    sleep: Callable[[float], None],
    rng: random.Random,
    on_request: Callable[[], None] | None = None,
) -> httpx.Response:
    """The first answer below 400; retries transient failures within ``endpoint``'s bounds."""
    attempts, secret = endpoint.max_attempts, endpoint.api_key_env
    last = ""
    for attempt in range(attempts):
        wait_at_least = None
        try:
            if on_request is not None:
                on_request()
            response = client.post(path, json=body)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            last = f"{type(exc).__name__}: {snippet(exc, secret)}"
        else:
            if response.status_code < 400:
                return response
            last = f"HTTP {response.status_code}: {snippet(response.text, secret)}"
            if response.status_code not in RETRY_STATUS:
                raise EndpointRefused(response.status_code, last)
            wait_at_least = retry_after(response)
        if attempt + 1 < attempts:
            base, cap = endpoint.backoff_base_s, endpoint.backoff_max_s
            sleep(backoff_delay(attempt, base, cap, rng, wait_at_least))
    raise EndpointGaveUp(attempts, last)
