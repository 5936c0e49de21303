"""A tiny loopback HTTP server that records every request and answers as told.

Used to prove what a client sends where: that a server never receives a credential, and that a
cross-origin redirect target never sees `Authorization` or a custom auth header. Binds
127.0.0.1 on a kernel-chosen port (no race), serves each request on its own thread.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from .ports import LOOPBACK, StartStop


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it. `headers` has lower-cased names."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The value of header `name` (case-insensitive), or None when absent."""
        return self.headers.get(name.lower())

    def has_header(self, name: str) -> bool:
        """True when the request carried header `name` at all (even empty)."""
        return name.lower() in self.headers


@dataclass(frozen=True)
class CannedResponse:
    """What the server answers for one path."""

    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})


def _encode_body(body: bytes | str | Mapping[str, Any] | list[Any]) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode("utf-8"), "text/plain; charset=utf-8"
    return json.dumps(body).encode("utf-8"), "application/json"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # Trailers (if any) end with an empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        split = urlsplit(self.path)
        raw = list(self.headers.items())
        record = RecordedRequest(
            method=self.command,
            path=split.path,
            query=split.query,
            headers={k.lower(): v for k, v in raw},
            body=self._read_body(),
            raw_headers=raw,
        )
        owner = self.server.owner
        owner._record(record)
        canned = owner._response_for(split.path)
        self.send_response(canned.status)
        for name, value in canned.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(canned.body)))
        # One request per connection: no keep-alive connection can outlive `stop()` and be
        # served by a lingering handler thread.
        self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(canned.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: request lines may contain secrets in query strings."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, owner: RecordingServer) -> None:
        self.owner = owner
        super().__init__((LOOPBACK, 0), _Handler)


class RecordingServer(StartStop):
    """Records requests; answers per path with a canned response (default: 200 `{}`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._responses: dict[str, CannedResponse] = {}
        self._default = CannedResponse()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, `http://127.0.0.1:PORT` (no trailing slash)."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def localhost_url(self) -> str:
        """The same server as `http://localhost:PORT`: another *hostname*, for origin tests.

        Clients such as requests treat a change of hostname (not only of port) as cross-origin;
        this gives a second origin without binding anything but 127.0.0.1.
        """
        return f"http://localhost:{self.port}"

    def start(self) -> RecordingServer:
        """Bind and serve in a daemon thread."""
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"recording-server-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # ------------------------------------------------------------------ responses

    def set_response(
        self,
        path: str,
        status: int = 200,
        body: bytes | str | Mapping[str, Any] | list[Any] = b"",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer requests to `path` (exact match, query ignored) with this status/body/headers.

        A dict or list body is sent as JSON; a str as text; bytes as they are. `Content-Type`
        follows from the body unless `headers` sets it.
        """
        data, content_type = _encode_body(body)
        merged = {"Content-Type": content_type}
        merged.update(headers or {})
        with self._lock:
            self._responses[path] = CannedResponse(status, data, merged)

    def set_default_response(
        self,
        status: int = 200,
        body: bytes | str | Mapping[str, Any] | list[Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer every path without its own response like this (body None: JSON `{}`)."""
        data, content_type = _encode_body({} if body is None else body)
        merged = {"Content-Type": content_type}
        merged.update(headers or {})
        with self._lock:
            self._default = CannedResponse(status, data, merged)

    def redirect(self, path: str, location: str, status: int = 302) -> None:
        """Answer `path` with a redirect to `location` (absolute URL or path)."""
        self.set_response(path, status=status, body=b"", headers={"Location": location})

    def _response_for(self, path: str) -> CannedResponse:
        with self._lock:
            return self._responses.get(path, self._default)

    # ------------------------------------------------------------------ records

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(record)

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of all requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        """The recorded requests whose path is exactly `path`."""
        return [r for r in self.requests if r.path == path]

    def clear(self) -> None:
        """Forget the recorded requests (responses stay as configured)."""
        with self._lock:
            self._requests.clear()
