"""A loopback HTTP forwarder that counts requests per path: proves how often a server is read.

Used where the real server (OpenBao) offers no cheap per-request counter to the tests.
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from .ports import LOOPBACK, StartStop

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class CountingProxy(StartStop):
    """Forwards every request to ``upstream`` and counts ``(method, path)`` pairs."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.counts[(method, path)]

    def start(self) -> CountingProxy:
        proxy = self
        session = requests.Session()
        session.trust_env = False

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path = self.path.split("?", 1)[0]
                with proxy._lock:
                    proxy.counts[(self.command, path)] += 1
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = session.request(
                    self.command,
                    proxy.upstream + self.path,
                    data=body,
                    headers=headers,
                    timeout=30,
                    allow_redirects=False,
                )
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(upstream.content)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
