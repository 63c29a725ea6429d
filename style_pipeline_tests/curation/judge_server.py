"""A small OpenAI-compatible chat server on 127.0.0.1 that answers from a script.

Each request pops the next scripted reply (status, JSON body or raw text, headers, a delay
before answering); when the script is empty it answers "A wins" with usage. It records
every request body and Authorization header so tests can check what was sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Reply:
    status: int = 200
    content: str | None = '{"winner": "A", "rationale": "A is sharper"}'
    raw: str | None = None  # sent as the body instead of a chat completion
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    usage: tuple[int, int] | None = (1000, 20)


def chat(content: str, usage: tuple[int, int] | None = (1000, 20)) -> dict:
    body: dict = {"choices": [{"message": {"role": "assistant", "content": content}}]}
    if usage is not None:
        body["usage"] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                         "total_tokens": sum(usage)}  # fmt: skip
    return body


class ChatServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[Reply] = []
        self.bodies: list[dict] = []
        self.authorizations: list[str] = []
        self.times: list[float] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: ChatServer

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.server.bodies.append(body)
        self.server.authorizations.append(self.headers.get("Authorization", ""))
        self.server.times.append(time.monotonic())
        reply = self.server.script.pop(0) if self.server.script else Reply()
        if reply.delay_s:
            time.sleep(reply.delay_s)
        if reply.raw is not None:
            data = reply.raw.encode()
        else:
            data = json.dumps(chat(reply.content or "", reply.usage)).encode()
        try:
            self.send_response(reply.status)
            for name, value in {"Content-Type": "application/json", **reply.headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client timed out first
            pass

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(name="chat_server")
def chat_server_fixture() -> Iterator[ChatServer]:
    """A running :class:`ChatServer`; import this fixture into a test module to use it."""
    server = ChatServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
