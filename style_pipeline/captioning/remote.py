"""Captions from an OpenAI-compatible vision endpoint, with bounded retries and a cache.

One ``POST {base_url}/chat/completions`` per image (text prompt + image as a data URL,
after an optional system turn: the JoyCaption-style prompt sends one).
429, 5xx, timeouts and connection errors are retried with exponential backoff and full
jitter (``Retry-After`` honoured, every delay capped), at most ``max_attempts`` times;
other 4xx fail at once. Answers are cached in the :class:`Store` under
``captions/cache/<sha256(image, prompt, model)>.json``, so re-runs make no requests; an
unreadable entry (a torn write, a stray edit) is a miss: logged by key and rewritten.
Every error text and every answer passes through :func:`style_pipeline.redaction.redact`,
so neither the key nor credentials a server echoes reach logs, metadata or tables.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence

import httpx
from PIL import Image

from style_pipeline.captioning.captioners import CaptionResult, Labels, per_image
from style_pipeline.contracts.captioning import EndpointConfig
from style_pipeline.redaction import redact
from style_pipeline.remote_http import (
    RETRY_STATUS,
    EndpointGaveUp,
    EndpointRefused,
    backoff_delay,
    endpoint_client,
    image_data_url,
    post_with_retries,
    snippet,
)
from style_pipeline.storage import layout
from style_pipeline.storage.store import Store

# Shared with the pairwise judge through style_pipeline.remote_http; re-exported here.
__all__ = [
    "RETRY_STATUS",
    "CaptionEndpointError",
    "OpenAICompatibleCaptioner",
    "backoff_delay",
    "cache_key",
    "image_data_url",
    "image_sha256",
    "message_text",
    "read_cached_caption",
    "snippet",
]

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
        system_prompt: str | None = None,
        store: Store | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        self.endpoint = endpoint
        self.model_id = str(endpoint.model)
        self.max_tokens = max_tokens
        self.default_prompt = default_prompt
        self.system_prompt = system_prompt
        self.store = store if endpoint.cache else None
        self.requests_made = 0
        self.unreadable_cache_keys: list[str] = []  # entries treated as misses and rewritten
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._client = endpoint_client(endpoint, transport)

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
            key = cache_key(image_sha256(image), self._cache_prompt(prompt), self.model_id)
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

    def _cache_prompt(self, prompt: str) -> str:
        """What the answer depends on besides image and model (keys without a system turn
        are unchanged, so caches written before it was added stay valid)."""
        return prompt if self.system_prompt is None else f"{self.system_prompt}\n\n{prompt}"

    def _result(self, text: str, prompt: str, cached: bool) -> CaptionResult:
        return CaptionResult(text, self.name, self.model_id, prompt, cached)

    def request(self, image: Image.Image, prompt: str) -> str:
        """Ask the endpoint for one caption, retrying transient failures within the bounds."""
        url = image_data_url(image, self.endpoint.max_image_edge)
        messages: list[dict] = []
        if self.system_prompt is not None:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.append({
            "role": "user",
            "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": url}},
            ],
        })  # fmt: skip
        body = {
            "model": self.model_id,
            "max_tokens": self.max_tokens,
            "temperature": self.endpoint.temperature,
            "messages": messages,
        }
        try:
            response = post_with_retries(
                self._client,
                "chat/completions",
                body,
                self.endpoint,
                sleep=self._sleep,
                rng=self._rng,
                on_request=self._count_request,
            )
        except EndpointRefused as exc:
            raise CaptionEndpointError(f"{self.url()} refused: {exc.detail}") from None
        except EndpointGaveUp as exc:
            raise CaptionEndpointError(
                f"gave up after {exc.attempts} attempts to {self.url()}chat/completions; "
                f"last error: {exc.last}"
            ) from None
        try:
            return message_text(response.json(), self.endpoint.api_key_env)
        except ValueError as exc:  # invalid JSON
            shown = snippet(exc, self.endpoint.api_key_env)
            raise CaptionEndpointError(f"response is not JSON: {shown}") from exc

    def _count_request(self) -> None:
        self.requests_made += 1

    def url(self) -> str:
        """The base URL as it may be shown: credentials redacted."""
        return redact(self._client.base_url, [self.endpoint.api_key_env])
