"""A loopback HTTP forwarder that counts requests per path: proves how often a server is read.

Used where the real server (OpenBao) offers no cheap per-request counter to the tests. It can
also inject the faults a real server cannot be made to produce on cue: a slow answer, and a run
of error statuses (503, 429, 412, ...) before the real server is reached again.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

from .ports import LOOPBACK, StartStop

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def digest(value: str) -> str:
    """How a test compares a header value with what a proxy saw, without holding it in clear."""
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class _Fault:
    path_prefix: str
    status: int
    remaining: int | None  # None: until cleared
    body: bytes


class CountingProxy(StartStop):
    """Forwards every request to ``upstream`` and counts ``(method, path)`` pairs."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._delays: dict[str, float] = {}
        self._faults: list[_Fault] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        #: Digests of the Authorization values forwarded (never the values: test output).
        self.authorizations: set[str] = set()

    # -- fault injection -----------------------------------------------------------------------

    def delay(self, path_prefix: str, seconds: float) -> None:
        """Hold requests whose path starts with ``path_prefix`` for ``seconds`` (0 removes)."""
        with self._lock:
            if seconds > 0:
                self._delays[path_prefix] = seconds
            else:
                self._delays.pop(path_prefix, None)

    def fail(
        self,
        path_prefix: str,
        status: int = 503,
        times: int | None = None,
        body: bytes = b'{"errors":["injected fault"]}',
    ) -> None:
        """Answer ``status`` instead of forwarding, ``times`` times (None: until ``heal()``)."""
        with self._lock:
            self._faults.append(_Fault(path_prefix, status, times, body))

    def heal(self) -> None:
        """Remove every injected fault and delay."""
        with self._lock:
            self._faults.clear()
            self._delays.clear()

    def _injected(self, path: str) -> tuple[float, _Fault | None]:
        with self._lock:
            delay = max((s for p, s in self._delays.items() if path.startswith(p)), default=0.0)
            for fault in self._faults:
                if path.startswith(fault.path_prefix) and fault.remaining != 0:
                    if fault.remaining is not None:
                        fault.remaining -= 1
                    return delay, fault
            return delay, None

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
                authorization = self.headers.get("Authorization")
                with proxy._lock:
                    proxy.counts[(self.command, path)] += 1
                    if authorization is not None:
                        proxy.authorizations.add(digest(authorization))
                delay, fault = proxy._injected(path)
                if delay:
                    time.sleep(delay)
                if fault is not None:
                    self.send_response(fault.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(fault.body)))
                    self.send_header("Connection", "close")
                    self.end_headers()
                    self.wfile.write(fault.body)
                    return
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
