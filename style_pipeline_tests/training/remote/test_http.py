"""training.remote.http against a real HTTP server on 127.0.0.1: retries and backoff on 429
(Retry-After) and 5xx bursts, malformed JSON, timeouts, refusals, the circuit breaker,
redaction, the token kept to its host, multipart retries and streamed downloads."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from style_pipeline.contracts.remote_training import RemoteCallSettings
from style_pipeline.training.remote.http import (
    CircuitBreaker,
    CircuitOpen,
    RemoteBadAnswer,
    RemoteHttp,
    RemoteRefused,
    RemoteUnavailable,
)

TOKEN = "r8_s3cr3tT0kenValue1234567890"


class Script:
    """Answers per path: a list of (status, headers, body, delay_s), the last one repeated."""

    def __init__(self) -> None:
        self.routes: dict[str, list[tuple[int, dict[str, str], bytes, float]]] = {}
        self.requests: list[dict] = []

    def on(self, path: str, *answers: tuple[int, dict[str, str], bytes, float]) -> None:
        self.routes[path] = list(answers)

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes, float]:
        answers = self.routes.get(path) or [(404, {}, b'{"error": "no route"}', 0.0)]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def ok(body: object, delay: float = 0.0) -> tuple[int, dict[str, str], bytes, float]:
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode(), delay


@pytest.fixture
def server():
    script = Script()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            script.requests.append(
                {"method": self.command, "path": path, "headers": dict(self.headers), "body": body}
            )
            status, headers, payload, delay = script.answer(path)
            if delay:
                time.sleep(delay)
            if path == "/echo-auth":  # a server that leaks what it got into an error
                payload = f"bad request; you sent {self.headers.get('Authorization')}".encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass

        do_GET = do_POST = _serve

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    script.url = f"http://127.0.0.1:{httpd.server_port}"  # type: ignore[attr-defined]
    yield script
    httpd.shutdown()
    httpd.server_close()


def settings(**kw) -> RemoteCallSettings:
    base = {"timeout_s": 2.0, "max_attempts": 4, "backoff_base_s": 0.5, "backoff_max_s": 30.0}
    return RemoteCallSettings(**{**base, **kw})


def client(server, sleeps: list[float] | None = None, **kw) -> RemoteHttp:
    breaker = kw.pop("breaker", None) or CircuitBreaker("test", 100, 60.0)
    return RemoteHttp(
        server.url, settings(**kw), "test", TOKEN, breaker=breaker,
        sleep=(sleeps.append if sleeps is not None else lambda s: None),
    )  # fmt: skip


def test_retry_after_of_a_429_is_honoured(server):
    server.on("/a", (429, {"Retry-After": "7"}, b"slow down", 0.0), ok({"fine": True}))
    sleeps: list[float] = []
    assert client(server, sleeps).get_json("/a") == {"fine": True}
    assert len(server.requests) == 2
    assert sleeps == [7.0]  # at least Retry-After (jitter below it is raised to it)


def test_a_5xx_burst_is_retried_with_capped_full_jitter_backoff(server):
    server.on("/a", (503, {}, b"busy", 0.0), (502, {}, b"", 0.0), (500, {}, b"", 0.0), ok([1]))
    sleeps: list[float] = []
    assert client(server, sleeps).post_json("/a", {"x": 1}) == [1]
    assert len(server.requests) == 4
    assert json.loads(server.requests[-1]["body"]) == {"x": 1}
    assert len(sleeps) == 3
    for retry, delay in enumerate(sleeps):
        assert 0 <= delay <= min(30.0, 0.5 * 2**retry)


def test_gives_up_after_max_attempts_naming_the_route(server):
    server.on("/prompt", (500, {}, b"internal error", 0.0))
    with pytest.raises(RemoteUnavailable, match=r"test POST /prompt: gave up after 3 attempts"):
        client(server, max_attempts=3).post_json("/prompt", {})
    assert len(server.requests) == 3


def test_malformed_json_names_the_route(server):
    server.on("/history/abc", (200, {"Content-Type": "text/html"}, b"<html>oops", 0.0))
    with pytest.raises(RemoteBadAnswer, match=r"test GET /history/abc: answer is not JSON"):
        client(server).get_json("/history/abc")
    assert len(server.requests) == 1  # a wrong answer is not retried


def test_a_refusal_is_not_retried(server):
    server.on("/missing", (404, {}, b'{"detail": "not found"}', 0.0))
    with pytest.raises(RemoteRefused) as err:
        client(server).get_json("/missing")
    assert err.value.status == 404
    assert len(server.requests) == 1


def test_a_slow_server_times_out_and_is_retried(server):
    server.on("/slow", ok({"late": True}, delay=1.0))
    with pytest.raises(RemoteUnavailable, match="timed out"):
        client(server, timeout_s=0.2, max_attempts=2).get_json("/slow")
    assert len(server.requests) == 2


def test_connection_errors_are_retried():
    http = RemoteHttp(
        "http://127.0.0.1:9", settings(max_attempts=2), "test", breaker=CircuitBreaker("t", 9, 1),
        sleep=lambda s: None,
    )  # fmt: skip
    with pytest.raises(RemoteUnavailable, match="ConnectError"):
        http.get_json("/system_stats")


def test_the_breaker_opens_then_half_opens_then_closes(server):
    now = [0.0]
    breaker = CircuitBreaker("test", failures=2, reset_s=60.0, clock=lambda: now[0])
    server.on("/a", (503, {}, b"", 0.0))
    http = client(server, max_attempts=1, breaker=breaker)
    for _ in range(2):
        with pytest.raises(RemoteUnavailable):
            http.get_json("/a")
    assert breaker.state == "open"
    sent = len(server.requests)
    with pytest.raises(CircuitOpen, match=r"circuit open after 2 consecutive failed requests"):
        http.get_json("/a")
    assert len(server.requests) == sent  # nothing went out
    now[0] = 61.0
    assert breaker.state == "half_open"
    with pytest.raises(RemoteUnavailable):  # the trial fails: open again at once
        http.get_json("/a")
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        http.get_json("/a")
    now[0] = 200.0
    server.on("/a", ok({"up": True}))
    assert http.get_json("/a") == {"up": True}  # the trial succeeds: closed
    assert breaker.state == "closed" and breaker.consecutive == 0


def test_bad_answers_count_for_the_breaker(server):
    breaker = CircuitBreaker("test", failures=2, reset_s=60.0)
    server.on("/a", (200, {}, b"not json", 0.0))
    http = client(server, breaker=breaker)
    for _ in range(2):
        with pytest.raises(RemoteBadAnswer):
            http.get_json("/a")
    assert breaker.state == "open"


def test_errors_never_hold_the_token(server, monkeypatch):
    monkeypatch.setenv("MY_TOKEN_ENV", TOKEN)
    server.on("/echo-auth", (400, {}, b"", 0.0))
    http = client(server)
    with pytest.raises(RemoteRefused) as err:
        http.post_json("/echo-auth", {})
    assert server.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(err.value)
    assert "***" in str(err.value)
    server.on("/leak", (500, {}, f"token={TOKEN} failed".encode(), 0.0))
    with pytest.raises(RemoteUnavailable) as err2:
        client(server, max_attempts=1).get_json("/leak")
    assert TOKEN not in str(err2.value)


def test_the_token_goes_to_its_host_only(server, tmp_path):
    other = server.url.replace("127.0.0.1", "localhost")  # same server, another host name
    server.on("/weights.safetensors", (200, {}, b"W" * 5000, 0.0))
    http = client(server)
    dest = http.download(f"{other}/weights.safetensors", tmp_path / "w.safetensors")
    assert dest.read_bytes() == b"W" * 5000
    assert "Authorization" not in server.requests[-1]["headers"]
    http.download("/weights.safetensors", tmp_path / "own.safetensors")
    assert server.requests[-1]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_a_failed_download_leaves_no_file(server, tmp_path):
    server.on("/w", (500, {}, b"", 0.0))
    with pytest.raises(RemoteUnavailable):
        client(server, max_attempts=2).download("/w", tmp_path / "out" / "w.safetensors")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_retried_multipart_upload_sends_the_whole_file(server, tmp_path):
    data = tmp_path / "dataset.zip"
    data.write_bytes(b"Z" * 100_000)
    server.on("/upload/image", (503, {}, b"", 0.0), ok({"name": "dataset.zip"}))
    answer = client(server).post_multipart(
        "/upload/image", {"type": "input", "subfolder": "job"},
        {"image": ("dataset.zip", data, "application/zip")},
    )  # fmt: skip
    assert answer == {"name": "dataset.zip"}
    assert len(server.requests) == 2
    body = server.requests[-1]["body"]
    assert b"Z" * 100_000 in body and b'name="subfolder"' in body


def test_ws_url_follows_the_scheme():
    assert RemoteHttp("https://box:8188/", settings(), "t").ws_url("/ws?clientId=1") == (
        "wss://box:8188/ws?clientId=1"
    )
    assert RemoteHttp("http://box", settings(), "t").ws_url("ws") == "ws://box/ws"


def test_empty_answers_are_none(server):
    server.on("/interrupt", (200, {}, b"", 0.0))
    assert client(server).post_json("/interrupt") is None


def test_get_bytes_passes_the_query(server):
    server.on("/view", (200, {}, b"\x00\x01", 0.0))
    assert client(server).get_bytes("/view", {"filename": "a"}) == b"\x00\x01"
