"""A Hugging Face Hub stand-in on 127.0.0.1: the routes ``snapshot_download`` and
``hf_hub_download`` use (repo info, recursive tree, HEAD/GET resolve with Range), serving
files from memory. Every request is recorded so a test can tell a no-op from a download.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


class FakeHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []
        self.ranges: list[tuple[str, str]] = []  # (path, Range header) of ranged GETs
        self.cut_once: set[str] = set()  # files whose first GET stops halfway (a dropped line)
        self.failing: set[str] = set()  # files whose GET answers 500 while listed here
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_folder(self, repo_id: str, folder: Path, extra: dict[str, bytes] | None = None) -> None:
        files = {
            p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*"))
            if p.is_file()
        }
        self.repos[repo_id] = {**files, **(extra or {})}

    def sha(self, repo_id: str) -> str:
        digest = hashlib.sha1()
        for name, data in sorted(self.repos[repo_id].items()):
            digest.update(name.encode() + hashlib.sha256(data).digest())
        return digest.hexdigest()

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def serve_online(self, monkeypatch) -> FakeHub:
        """Start, and point ``huggingface_hub`` at this server with downloads allowed (the
        tests run offline; ``monkeypatch`` undoes the environment afterwards)."""
        from huggingface_hub import constants

        self.start()
        monkeypatch.setenv("HF_ENDPOINT", self.url)
        monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def downloads(self) -> list[str]:
        return [path for method, path in self.requests if method == "GET" and "/resolve/" in path]

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                self._route(body=False)

            def do_GET(self) -> None:
                self._route(body=True)

            def _json(self, payload, body: bool) -> None:
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def _missing(self, what: str) -> None:
                self.send_response(404)
                self.send_header("X-Error-Code", what)
                self.send_header("X-Error-Message", f"{what}: {self.path}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _route(self, body: bool) -> None:
                path = unquote(urlsplit(self.path).path)
                hub.requests.append((self.command, path))
                if path.startswith("/api/models/"):
                    return self._api(path.removeprefix("/api/models/"), body)
                if "/resolve/" in path:
                    repo_id, rest = path.strip("/").split("/resolve/", 1)
                    _revision, filename = rest.split("/", 1)
                    return self._file(repo_id, filename, body)
                return self._missing("RepoNotFound")

            def _api(self, rest: str, body: bool) -> None:
                for marker in ("/revision/", "/tree/"):
                    if marker in rest:
                        repo_id = rest.split(marker, 1)[0]
                        break
                else:
                    repo_id, marker = rest, "/revision/"
                files = hub.repos.get(repo_id)
                if files is None:
                    return self._missing("RepoNotFound")
                if marker == "/tree/":
                    return self._json(
                        [
                            {
                                "type": "file",
                                "path": name,
                                "size": len(data),
                                "oid": hashlib.sha1(data).hexdigest(),
                            }
                            for name, data in sorted(files.items())
                        ],  # fmt: skip
                        body,
                    )
                siblings = [{"rfilename": n, "size": len(d)} for n, d in sorted(files.items())]
                return self._json(
                    {"id": repo_id, "sha": hub.sha(repo_id), "siblings": siblings}, body
                )

            def _file(self, repo_id: str, filename: str, body: bool) -> None:
                files = hub.repos.get(repo_id)
                if files is None:
                    return self._missing("RepoNotFound")
                if filename not in files:
                    return self._missing("EntryNotFound")
                data = files[filename]
                start = 0
                wanted = self.headers.get("Range")
                if wanted and body:
                    hub.ranges.append((filename, wanted))
                if body and filename in hub.failing:
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if body and filename in hub.cut_once and not wanted:
                    hub.cut_once.discard(filename)
                    self.send_response(200)
                    self.send_header("X-Repo-Commit", hub.sha(repo_id))
                    self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return None
                if wanted and wanted.startswith("bytes=") and body:
                    start = int(wanted.removeprefix("bytes=").split("-")[0] or 0)
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("X-Repo-Commit", hub.sha(repo_id))
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if body:
                    self.wfile.write(data[start:])

        return Handler
