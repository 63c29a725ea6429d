"""One HTTP client for every remote training backend: timeouts, retries, a circuit breaker.

:class:`RemoteHttp` wraps an ``httpx.Client`` on a backend's base URL. Every request:

- times out after ``training.remote.timeout_s`` per operation (connect, each read, each
  write: a slow upload that keeps sending is not cut off, a stalled one is);
- is retried on 429, 5xx, timeouts and connection errors, at most ``max_attempts`` times,
  after exponential backoff with full jitter (``Retry-After`` honoured, every delay capped
  at ``backoff_max_s``); any other 4xx raises :class:`RemoteRefused` at once;
- passes the backend's :class:`CircuitBreaker`: after ``breaker_failures`` consecutive
  failed requests (every attempt failed, or an answer that is not JSON) the circuit opens
  and requests fail at once with :class:`CircuitOpen` until ``breaker_reset_s`` have passed;
  then one trial request is let through (half-open): success closes it, failure reopens it;
- raises errors whose text went through :func:`style_pipeline.redaction.redact` plus the
  token's exact value: no token, no ``Authorization`` header ever reaches a log or a job.

The token is sent only to the base URL's host: an absolute URL on another host (a CDN
holding the weights) is fetched without it. httpx, not requests: the OpenAI-compatible
clients (``remote_http``) already use it, so the package keeps one HTTP library.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from style_pipeline.contracts.remote_training import RemoteCallSettings
from style_pipeline.redaction import MASK, MIN_EXACT_LENGTH, redact
from style_pipeline.remote_http import RETRY_STATUS, backoff_delay
from style_pipeline.training.remote.base import RemoteTrainingError

SNIPPET_CHARS = 300  # of an answer's body kept in an error
SCAN_CHARS = 4000  # redacted before cutting, so a secret cut in half cannot slip through
CHUNK = 1 << 20

# A file part of a multipart upload: (file name, bytes or a local path, content type). A
# path is opened again on every attempt, so a retried upload sends the whole file.
FilePart = tuple[str, bytes | Path, str]


class RemoteRefused(RemoteTrainingError):
    """A status retrying cannot fix (400, 401, 403, 404, 422 ...)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class RemoteUnavailable(RemoteTrainingError):
    """Every attempt failed transiently (429, 5xx, timeouts, connection errors)."""


class CircuitOpen(RemoteUnavailable):
    """The backend's circuit is open: no request is sent until its cool-down ends."""


class RemoteBadAnswer(RemoteTrainingError):
    """An answer that is not what the route documents (not JSON, wrong shape)."""


BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    """Consecutive failures of one backend; opens at ``failures``, half-opens after ``reset_s``."""

    def __init__(
        self,
        name: str,
        failures: int,
        reset_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name, self.failures, self.reset_s, self.clock = name, failures, reset_s, clock
        self.consecutive = 0
        self.opened_at: float | None = None
        self._trial = False  # a half-open trial request is in flight
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return "closed"
        return "half_open" if self.clock() - self.opened_at >= self.reset_s else "open"

    def before_request(self) -> None:
        """Raise :class:`CircuitOpen` unless a request may go out now."""
        with self._lock:
            state = self.state
            if state == "closed":
                return
            if state == "half_open" and not self._trial:
                self._trial = True  # this request is the trial
                return
            assert self.opened_at is not None
            wait = max(0.0, self.reset_s - (self.clock() - self.opened_at))
            raise CircuitOpen(
                f"{self.name}: circuit open after {self.consecutive} consecutive failed "
                f"requests; next try in {wait:.0f} s (training.remote.breaker_reset_s)"
            )

    def success(self) -> None:
        with self._lock:
            self.consecutive, self.opened_at, self._trial = 0, None, False

    def failure(self) -> None:
        with self._lock:
            self.consecutive += 1
            if self._trial or self.consecutive >= self.failures:
                self.opened_at = self.clock()
            self._trial = False


_BREAKERS: dict[str, CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def breaker_for(backend_name: str, settings: RemoteCallSettings) -> CircuitBreaker:
    """The process-wide breaker of ``backend_name`` (one per backend, shared by clients)."""
    with _BREAKERS_LOCK:
        breaker = _BREAKERS.get(backend_name)
        if breaker is None:
            breaker = CircuitBreaker(
                backend_name, settings.breaker_failures, settings.breaker_reset_s
            )
            _BREAKERS[backend_name] = breaker
        return breaker


def reset_breakers() -> None:
    """Forget every backend's failures (tests; a long-lived process after a fix)."""
    with _BREAKERS_LOCK:
        _BREAKERS.clear()


@dataclass(frozen=True)
class _Attempt:
    """What one attempt came back with: an answer, or why it failed transiently."""

    response: httpx.Response | None
    error: str
    retry_after: float | None = None


class RemoteHttp:
    """Retrying, breaker-guarded, redacting HTTP calls to one backend's base URL."""

    def __init__(
        self,
        base_url: str,
        settings: RemoteCallSettings,
        backend_name: str,
        token: str | None = None,
        *,
        token_env: str | None = None,
        auth_scheme: str = "Bearer",
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url:
            raise ValueError(f"{backend_name}: no base URL configured")
        self.base_url = base_url.rstrip("/")
        self.settings, self.name = settings, backend_name
        self._token, self._token_env, self._scheme = token, token_env, auth_scheme
        self.breaker = breaker or breaker_for(backend_name, settings)
        self._sleep, self._rng = sleep, rng or random.Random()
        self._host = urlsplit(self.base_url).netloc
        self._client = httpx.Client(
            timeout=settings.timeout_s, transport=transport, follow_redirects=True
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> RemoteHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what the backends call -------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """``Authorization`` for the base URL's host (a websocket handshake needs it too)."""
        return {"Authorization": f"{self._scheme} {self._token}"} if self._token else {}

    def url(self, path: str) -> str:
        """``path`` on the base URL (an absolute URL is kept as it is)."""
        if "://" in path:
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def ws_url(self, path: str) -> str:
        """``path`` on the base URL with ws:// (wss:// for https)."""
        url = self.url(path)
        if url.startswith("https://"):
            return "wss://" + url[len("https://") :]
        if url.startswith("http://"):
            return "ws://" + url[len("http://") :]
        return url

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return _loads(self.request("GET", path, params=params, expect_json=True))

    def post_json(self, path: str, body: Any = None) -> Any:
        """POST ``body`` as JSON; the answer's JSON (None for an empty body)."""
        return _loads(self.request("POST", path, json=body, expect_json=True))

    def post_multipart(
        self, path: str, fields: Mapping[str, str], files: Mapping[str, FilePart]
    ) -> Any:
        """POST a multipart form; the answer's JSON (None for an empty body)."""
        return _loads(self.request("POST", path, data=dict(fields), files=files, expect_json=True))

    def get_bytes(self, path: str, params: Mapping[str, Any] | None = None) -> bytes:
        return self.request("GET", path, params=params).content

    def download(self, path: str, dest: Path, params: Mapping[str, Any] | None = None) -> Path:
        """Stream ``path`` (or an absolute URL) into ``dest`` (written whole or not at all)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        partial = dest.with_name(dest.name + ".partial")

        def stream() -> httpx.Response:
            with self._client.stream(
                "GET", self.url(path), params=params, headers=self._headers_for(path)
            ) as response:
                if response.status_code < 400:
                    with open(partial, "wb") as fh:
                        for chunk in response.iter_bytes(CHUNK):
                            fh.write(chunk)
                else:
                    response.read()
                return response

        try:
            self._with_retries("GET", path, stream)
            partial.replace(dest)
        finally:
            partial.unlink(missing_ok=True)
        return dest

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, str] | None = None,
        files: Mapping[str, FilePart] | None = None,
        headers: Mapping[str, str] | None = None,
        expect_json: bool = False,
    ) -> httpx.Response:
        """One call with retries; the first answer below 400 (checked to be JSON, or empty,
        with ``expect_json``: an answer that is not counts as a failure for the breaker)."""
        sent_headers = {**self._headers_for(path), **(headers or {})}

        def send() -> httpx.Response:
            if files is None:
                return self._client.request(
                    method, self.url(path), params=params, json=json, data=data,
                    headers=sent_headers,
                )  # fmt: skip
            opened = []
            try:
                parts: dict[str, Any] = {}
                for field, (filename, content, content_type) in files.items():
                    if isinstance(content, Path):
                        handle = open(content, "rb")  # closed below
                        opened.append(handle)
                        parts[field] = (filename, handle, content_type)
                    else:
                        parts[field] = (filename, content, content_type)
                return self._client.request(
                    method, self.url(path), params=params, data=data, files=parts,
                    headers=sent_headers,
                )  # fmt: skip
            finally:
                for handle in opened:
                    handle.close()

        return self._with_retries(method, path, send, expect_json)

    # -- internals --------------------------------------------------------------------------

    def _headers_for(self, path: str) -> dict[str, str]:
        """The token only for the base URL's host."""
        if "://" in path and urlsplit(path).netloc != self._host:
            return {}
        return self.auth_headers()

    def scrub(self, text: object) -> str:
        """``text`` without the token (its exact value and anything shaped like a secret)."""
        out = str(text)[:SCAN_CHARS]
        if self._token and len(self._token) >= MIN_EXACT_LENGTH:
            out = out.replace(self._token, MASK)
        return redact(out, [self._token_env])

    def _route(self, method: str, path: str) -> str:
        shown = urlsplit(path).path if "://" in path else "/" + path.lstrip("/")
        return f"{self.name} {method} {shown}"

    def _check_json(self, method: str, path: str, response: httpx.Response) -> None:
        try:
            _loads(response)
        except ValueError as exc:
            kind = response.headers.get("content-type", "no content type")
            raise RemoteBadAnswer(
                f"{self._route(method, path)}: answer is not JSON (HTTP {response.status_code}, "
                f"{kind}): {self.scrub(response.text)[:SNIPPET_CHARS]!r}"
            ) from exc

    def _attempt(self, send: Callable[[], httpx.Response]) -> _Attempt:
        try:
            response = send()
        except httpx.TimeoutException as exc:
            return _Attempt(None, f"timed out ({type(exc).__name__}): {self.scrub(exc)}")
        except httpx.TransportError as exc:
            return _Attempt(None, f"{type(exc).__name__}: {self.scrub(exc)}")
        if response.status_code in RETRY_STATUS:
            body = self.scrub(response.text)[:SNIPPET_CHARS]
            wait = _retry_after(response)
            return _Attempt(response, f"HTTP {response.status_code}: {body}", wait)
        return _Attempt(response, "")

    def _with_retries(
        self,
        method: str,
        path: str,
        send: Callable[[], httpx.Response],
        expect_json: bool = False,
    ) -> httpx.Response:
        route, attempts = self._route(method, path), self.settings.max_attempts
        self.breaker.before_request()
        last = ""
        for attempt in range(attempts):
            outcome = self._attempt(send)
            response = outcome.response
            if response is not None and not outcome.error:
                if expect_json and response.status_code < 400:
                    try:
                        self._check_json(method, path, response)
                    except RemoteBadAnswer:
                        self.breaker.failure()
                        raise
                self.breaker.success()  # the service answered: it is up
                if response.status_code >= 400:
                    body = self.scrub(response.text)[:SNIPPET_CHARS]
                    raise RemoteRefused(
                        f"{route}: HTTP {response.status_code}: {body}", response.status_code
                    )
                return response
            last = outcome.error
            if attempt + 1 < attempts:
                base, cap = self.settings.backoff_base_s, self.settings.backoff_max_s
                self._sleep(backoff_delay(attempt, base, cap, self._rng, outcome.retry_after))
        self.breaker.failure()
        raise RemoteUnavailable(f"{route}: gave up after {attempts} attempts; last: {last}")


def _loads(response: httpx.Response) -> Any:
    """The answer's JSON; None for an empty body."""
    return json.loads(response.content) if response.content.strip() else None


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers["retry-after"]))
    except (KeyError, ValueError):
        return None
