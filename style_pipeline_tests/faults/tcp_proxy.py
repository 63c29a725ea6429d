"""A TCP proxy on 127.0.0.1 that can cut connections part-way, to stage a network outage.

It forwards bytes both ways between a client and one upstream address.
``cut_connections_after(n)`` starts an outage of large transfers: every connection is
closed, both ways, as soon as its client has sent more than ``n`` bytes, so each attempt
at a big request dies mid-body while small requests (an abort, a listing) still pass.
``cut_connections_after(None)`` heals the link.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class CuttingProxy:
    """Forward ``127.0.0.1:<port>`` to ``upstream``; cut on demand (see the module docstring)."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._limit: int | None = None  # client bytes one connection may carry; None: no cut
        self.cuts = 0  # connections cut so far
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cut_connections_after(self, n_bytes: int | None) -> None:
        """From now on cut every connection once it has sent ``n_bytes`` (None: heal)."""
        with self._lock:
            self._limit = n_bytes

    def close(self) -> None:
        self._stop.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # the listener was closed
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            sent = [0]
            for src, dst, counter in ((client, upstream, sent), (upstream, client, None)):
                threading.Thread(
                    target=self._pump, args=(src, dst, counter, (client, upstream)), daemon=True
                ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        sent: list[int] | None,
        pair: tuple[socket.socket, socket.socket],
    ) -> None:
        for chunk in _chunks(src):
            if sent is not None:
                sent[0] += len(chunk)
                with self._lock:
                    limit = self._limit
                if limit is not None and sent[0] > limit:
                    with self._lock:
                        self.cuts += 1
                    for sock in pair:  # drop the link mid-request: no response will come
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                        sock.close()
                    return
            try:
                dst.sendall(chunk)
            except OSError:
                return
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while True:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return
        if not chunk:
            return
        yield chunk
