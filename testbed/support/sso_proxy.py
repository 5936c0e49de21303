"""A loopback "SSO proxy" in front of a server: what an oauth2-proxy or an authenticating ingress
does to a credential it does not accept.

No real SSO proxy can be told on cue which credential is stale, so this one is a fake: requests
whose credential header is in its refused set get its login page (200 `text/html`) or a 302 to a
login URL (on another origin, or its own `/sso/login`); all others are forwarded to the upstream
server, as `CountingProxy` forwards; it also serves as a plain HTTP proxy (`proxies=`) for one
upstream. Binds 127.0.0.1 on a kernel-chosen port.

It records, per request, only method, path and what it did: never a credential.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import quote, urlsplit

import requests

from .ports import LOOPBACK, StartStop

LOGIN_PATH = "/sso/login"
LOGIN_PAGE = (
    b"<!doctype html><html><head><title>Sign in</title></head><body>"
    b'<form method="post" action="/sso/login"><input name="username"><input name="password" '
    b'type="password"><button>Sign in</button></form></body></html>'
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}
# requests has already decoded the upstream body: do not announce an encoding it no longer has.
_NOT_PASSED_BACK = _HOP_BY_HOP | {"content-encoding"}

Outcome = Literal["forwarded", "login-page", "redirect"]


@dataclass(frozen=True)
class Handled:
    """What the proxy did with one request."""

    method: str
    path: str
    outcome: Outcome


class SsoProxy(StartStop):
    """Forwards to ``upstream`` the requests whose ``header`` it accepts; refuses the others."""

    def __init__(self, upstream: str, header: str = "Authorization") -> None:
        self.upstream = upstream.rstrip("/")
        self.header = header
        self._lock = threading.Lock()
        self._refused: set[str] = set()
        self._refuse_all = False
        self._login_url: str | None = None  # None: answer with the login page itself
        self._handled: list[Handled] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- what counts as stale, and how it is answered -----------------------------------------

    def refuse(self, *header_values: str) -> None:
        """Treat requests carrying any of these exact header values as stale (adds to the set)."""
        with self._lock:
            self._refused.update(header_values)

    def refuse_all(self, on: bool = True) -> None:
        """Treat every request as stale (an expired SSO session, whatever the credential)."""
        with self._lock:
            self._refuse_all = on

    def redirect_to(self, login_url: str | None) -> None:
        """Answer stale requests with a 302 to ``login_url`` (None: with the login page)."""
        with self._lock:
            self._login_url = login_url

    @property
    def own_login_url(self) -> str:
        """The proxy's own login page: a same-origin redirect target."""
        return self.url + LOGIN_PATH

    # -- records -------------------------------------------------------------------------------

    @property
    def handled(self) -> list[Handled]:
        with self._lock:
            return list(self._handled)

    def outcomes(self, path_prefix: str = "/") -> list[Outcome]:
        """What the proxy did with each request under ``path_prefix``, oldest first."""
        return [h.outcome for h in self.handled if h.path.startswith(path_prefix)]

    def clear(self) -> None:
        with self._lock:
            self._handled.clear()

    # -- serving -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "not started"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    def _decide(self, method: str, path: str, credential: str | None) -> tuple[Outcome, str | None]:
        with self._lock:
            stale = self._refuse_all or (credential is not None and credential in self._refused)
            login_url = self._login_url
            if path == LOGIN_PATH:
                outcome: Outcome = "login-page"
            elif not stale:
                outcome = "forwarded"
            else:
                outcome = "login-page" if login_url is None else "redirect"
            self._handled.append(Handled(method, path, outcome))
        return outcome, login_url

    def start(self) -> SsoProxy:
        proxy = self
        session = requests.Session()
        session.trust_env = False

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                # A client using this as its HTTP proxy sends the absolute URL: keep path+query.
                target = urlsplit(self.path)
                path = target.path
                path_query = f"{path}?{target.query}" if target.query else path
                outcome, login_url = proxy._decide(
                    self.command, path, self.headers.get(proxy.header)
                )
                if outcome == "login-page":
                    self._answer(200, {"Content-Type": "text/html; charset=utf-8"}, LOGIN_PAGE)
                    return
                if outcome == "redirect":
                    assert login_url is not None
                    location = f"{login_url}?rd={quote(path_query, safe='')}"
                    self._answer(302, {"Location": location, "Content-Type": "text/html"}, b"")
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                upstream = session.request(
                    self.command,
                    proxy.upstream + path_query,
                    data=body,
                    headers=headers,
                    timeout=30,
                    allow_redirects=False,
                )
                kept = {
                    k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_PASSED_BACK
                }
                self._answer(upstream.status_code, kept, upstream.content)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle

            def log_message(self, format: str, *args: object) -> None:
                """Stay quiet: request lines may carry anything."""

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # stop() waits for one poll
            name="sso-proxy",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
