"""Following a ComfyUI server's websocket (``/ws?clientId=``): progress and ends of prompts.

ComfyUI sends the events of a prompt to the client id it was queued with: ``status`` (queue
size), ``execution_start``, ``executing`` ({node}; node null: the prompt ended),
``progress`` ({value, max}), ``executed``, ``execution_error`` ({node_type,
exception_type, exception_message}), ``execution_interrupted`` and ``execution_success``;
binary frames are preview images (ignored). :class:`ComfyEvents` reads them on a daemon
thread, reconnecting with a capped backoff when the socket drops, and keeps per prompt what
``ComfyUIBackend.status`` needs. The websocket is a fast path only: the history and queue
routes stay the source of truth, so a socket that never connects costs nothing but detail.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

MAX_LOG_LINES = 500
FINAL_EVENTS = {
    "execution_success": "completed",
    "execution_error": "failed",
    "execution_interrupted": "cancelled",
}


@dataclass(frozen=True)
class PromptEvents:
    """What the websocket said about one prompt."""

    started_at: float | None = None  # monotonic, this process
    value: int = 0
    max: int | None = None
    first_progress_at: float | None = None
    final: str | None = None  # completed | failed | cancelled
    error: str | None = None
    lines: tuple[str, ...] = field(default_factory=tuple)

    def eta_s(self, now: float) -> float | None:
        """Seconds left at the progress rate seen so far (None before two readings)."""
        if not self.max or self.value <= 0 or self.first_progress_at is None:
            return None
        elapsed = now - self.first_progress_at
        return max(0.0, elapsed / self.value * (self.max - self.value))


def describe_error(data: Mapping[str, Any]) -> str:
    """``execution_error``'s data as one line: node type, exception type and message."""
    parts = [str(data.get(k)) for k in ("node_type", "exception_type") if data.get(k)]
    message = str(data.get("exception_message") or "execution error").strip()
    return ": ".join([*parts, message])


class ComfyEvents:
    """A daemon thread reading ``ws_url``; :meth:`get` returns one prompt's events."""

    def __init__(
        self,
        ws_url: str,
        headers: Mapping[str, str],
        *,
        timeout_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ws_url, self.headers = ws_url, dict(headers)
        self.timeout_s, self.clock = timeout_s, clock
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._prompts: dict[str, PromptEvents] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wait_s: float = 5.0) -> bool:
        """Start reading; True once connected (waits at most ``wait_s``)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="comfyui-ws", daemon=True)
            self._thread.start()
        return self.connected.wait(wait_s)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def get(self, prompt_id: str) -> PromptEvents | None:
        with self._lock:
            return self._prompts.get(prompt_id)

    def _run(self) -> None:
        from websockets.exceptions import WebSocketException
        from websockets.sync.client import connect

        delay = 0.5
        while not self._stop.is_set():
            try:
                with connect(
                    self.ws_url,
                    additional_headers=self.headers,
                    open_timeout=self.timeout_s,
                    max_size=None,  # preview images can be large; they are skipped anyway
                ) as ws:
                    self.connected.set()
                    delay = 0.5
                    while not self._stop.is_set():
                        try:
                            message = ws.recv(timeout=0.5)
                        except TimeoutError:
                            continue
                        if isinstance(message, str):
                            self.handle(message)
            except (OSError, WebSocketException) as exc:
                # Never the headers (they hold the token): the exception's type is enough.
                self.last_error = f"{type(exc).__name__} on {self.ws_url.split('?')[0]}"
            self.connected.clear()
            self._stop.wait(delay)
            delay = min(delay * 2, 30.0)

    def handle(self, text: str) -> None:
        """Record one JSON message (public: the tests feed messages directly too)."""
        try:
            message = json.loads(text)
            kind, data = message["type"], message.get("data") or {}
        except (ValueError, KeyError, TypeError):
            return  # not an event of the documented shape: nothing to learn from it
        prompt_id = data.get("prompt_id") if isinstance(data, dict) else None
        if not prompt_id:
            return
        now = self.clock()
        with self._lock:
            events = self._prompts.get(prompt_id, PromptEvents())
            events = self._update(events, kind, data, now)
            lines = (*events.lines, _line(kind, data))[-MAX_LOG_LINES:]
            self._prompts[prompt_id] = replace(events, lines=lines)

    @staticmethod
    def _update(events: PromptEvents, kind: str, data: dict, now: float) -> PromptEvents:
        if kind == "execution_start":
            return replace(events, started_at=now)
        if kind == "progress":
            value, total = int(data.get("value") or 0), data.get("max")
            first = events.first_progress_at if events.first_progress_at is not None else now
            return replace(
                events, value=value, max=int(total) if total else None, first_progress_at=first
            )
        if kind in FINAL_EVENTS and events.final is None:
            error = describe_error(data) if kind == "execution_error" else None
            return replace(events, final=FINAL_EVENTS[kind], error=error)
        return events


def _line(kind: str, data: dict) -> str:
    if kind == "progress":
        return f"progress {data.get('value')}/{data.get('max')} (node {data.get('node')})"
    if kind == "executing":
        node = data.get("node")
        return f"executing node {node}" if node is not None else "executing: done"
    if kind == "execution_error":
        return f"execution_error: {describe_error(data)}"
    return kind
