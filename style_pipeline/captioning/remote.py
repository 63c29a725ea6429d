"""Captions from an OpenAI-compatible vision endpoint, with bounded retries and a cache.

One ``POST {base_url}/chat/completions`` per image (text prompt + image as a data URL).
429, 5xx, timeouts and connection errors are retried with exponential backoff and full
jitter (``Retry-After`` honoured, every delay capped), at most ``max_attempts`` times;
other 4xx fail at once. Answers are cached in the :class:`Store` under
``captions/cache/<sha256(image, prompt, model)>.json``, so re-runs make no requests; an
unreadable entry (a torn write, a stray edit) is a miss: logged by key and rewritten.
Every error text and every answer passes through :func:`style_pipeline.redaction.redact`,
so neither the key nor credentials a server echoes reach logs, metadata or tables.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence

import httpx
from PIL import Image

from style_pipeline.captioning.captioners import CaptionResult, Labels, per_image
from style_pipeline.contracts.captioning import EndpointConfig
from style_pipeline.redaction import redact
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
SNIPPET_CHARS = 200  # of a response body kept in an error
# Redact before cutting to the snippet, so a secret cut in half cannot slip past the
# patterns; this much is scanned (a secret beyond it cannot reach the first 200 chars).
SCAN_CHARS = 4000

log = logging.getLogger(__name__)


class CaptionEndpointError(RuntimeError):
    """The endpoint refused the request, answered nonsense, or kept failing after retries."""


def image_sha256(image: Image.Image) -> str:
    """Content hash of the decoded pixels (mode, size, bytes): independent of file encoding."""
    digest = hashlib.sha256(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


def cache_key(image_hash: str, prompt: str, model: str) -> str:
    """Store key of one cached answer."""
    blob = json.dumps([image_hash, prompt, model]).encode()
    return layout.caption_cache_key(hashlib.sha256(blob).hexdigest())


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


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def snippet(text: object, secret_env: str | None = None) -> str:
    """The first :data:`SNIPPET_CHARS` of ``text`` with credentials redacted."""
    return redact(str(text)[:SCAN_CHARS], [secret_env])[:SNIPPET_CHARS]


def message_text(payload: dict, secret_env: str | None = None) -> str:
    """The assistant text of a chat-completions answer (redacted); raises on a bad shape."""
    try:
        content = payload["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError) as exc:
        shown = snippet(payload, secret_env)
        raise CaptionEndpointError(f"unexpected response shape: {shown}") from exc
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str) or not content.strip():
        raise CaptionEndpointError(f"empty caption in response: {snippet(payload, secret_env)}")
    # A proxy or a model that echoes the request headers must not put the key in a table.
    return redact(content.strip(), [secret_env])


def read_cached_caption(store: Store, key: str) -> str | None:
    """The caption cached under ``key``; None (logged by key) when the entry is unreadable."""
    try:
        record = json.loads(store.read_bytes(key))
        caption = record["caption"] if isinstance(record, dict) else None
    except (OSError, ValueError, KeyError) as exc:  # UnicodeDecodeError is a ValueError
        caption, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "no caption string in the entry"
    if isinstance(caption, str) and caption.strip():
        return caption
    log.warning("caption cache entry %s is unreadable (%s): treated as a miss", key, why[:200])
    return None


class OpenAICompatibleCaptioner:
    """Captioner over an OpenAI-compatible ``/chat/completions`` endpoint."""

    name = "openai"

    def __init__(
        self,
        endpoint: EndpointConfig,
        *,
        max_tokens: int = 60,
        default_prompt: str = "Describe this image in one sentence.",
        store: Store | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        if not endpoint.configured():
            raise ValueError("endpoint.base_url and endpoint.model must both be set")
        headers = {}
        if endpoint.api_key_env:
            key = os.environ.get(endpoint.api_key_env)
            if not key:
                raise ValueError(
                    f"environment variable {endpoint.api_key_env} (endpoint.api_key_env) "
                    "is not set; set it or set api_key_env to null for keyless endpoints"
                )
            headers["Authorization"] = f"Bearer {key}"
        self.endpoint = endpoint
        self.model_id = str(endpoint.model)
        self.max_tokens = max_tokens
        self.default_prompt = default_prompt
        self.store = store if endpoint.cache else None
        self.requests_made = 0
        self.unreadable_cache_keys: list[str] = []  # entries treated as misses and rewritten
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = httpx.Client(
            base_url=str(endpoint.base_url).rstrip("/") + "/",
            timeout=endpoint.timeout_s,
            headers=headers,
            transport=transport,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OpenAICompatibleCaptioner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def caption(
        self,
        images: Sequence[Image.Image],
        prompts: str | Sequence[str] | None = None,
        labels: Sequence[Labels] | None = None,
    ) -> list[CaptionResult]:
        """One caption per image; cached answers are reused without a request."""
        results = []
        prompts = per_image(prompts, len(images), self.default_prompt)
        for image, prompt in zip(images, prompts, strict=True):
            key = cache_key(image_sha256(image), prompt, self.model_id)
            if self.store is not None and self.store.exists(key):
                cached = read_cached_caption(self.store, key)
                if cached is not None:
                    results.append(self._result(cached, prompt, cached=True))
                    continue
                self.unreadable_cache_keys.append(key)
            text = self.request(image, prompt)
            if self.store is not None:
                record = {"caption": text, "prompt": prompt, "model": self.model_id}
                self.store.put_bytes(json.dumps(record, sort_keys=True).encode(), key)
            results.append(self._result(text, prompt, cached=False))
        return results

    def _result(self, text: str, prompt: str, cached: bool) -> CaptionResult:
        return CaptionResult(text, self.name, self.model_id, prompt, cached)

    def request(self, image: Image.Image, prompt: str) -> str:
        """Ask the endpoint for one caption, retrying transient failures within the bounds."""
        body = {
            "model": self.model_id,
            "max_tokens": self.max_tokens,
            "temperature": self.endpoint.temperature,
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": prompt},
                        {
                            "type": "image_url",
                            "image_url": {
                                "url": image_data_url(image, self.endpoint.max_image_edge)
                            },
                        },
                    ],
                }
            ],
        }
        attempts = self.endpoint.max_attempts
        last = ""
        for attempt in range(attempts):
            retry_after = None
            try:
                self.requests_made += 1
                response = self._client.post("chat/completions", json=body)
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                last = f"{type(exc).__name__}: {snippet(exc, self.endpoint.api_key_env)}"
            else:
                if response.status_code < 400:
                    try:
                        return message_text(response.json(), self.endpoint.api_key_env)
                    except ValueError as exc:  # invalid JSON
                        shown = snippet(exc, self.endpoint.api_key_env)
                        raise CaptionEndpointError(f"response is not JSON: {shown}") from exc
                answer = snippet(response.text, self.endpoint.api_key_env)
                last = f"HTTP {response.status_code}: {answer}"
                if response.status_code not in RETRY_STATUS:
                    raise CaptionEndpointError(f"{self.url()} refused: {last}")
                retry_after = _retry_after(response)
            if attempt + 1 < attempts:
                base, cap = self.endpoint.backoff_base_s, self.endpoint.backoff_max_s
                self._sleep(backoff_delay(attempt, base, cap, self._rng, retry_after))
        raise CaptionEndpointError(
            f"gave up after {attempts} attempts to {self.url()}chat/completions; last error: {last}"
        )

    def url(self) -> str:
        """The base URL as it may be shown: credentials redacted."""
        return redact(self._client.base_url, [self.endpoint.api_key_env])
