"""A loopback stand-in for GitHub Actions' OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`).

No real runner is available to a test, so this plays its part: it accepts only
`Authorization: bearer <request token>`, reads the `audience` query parameter and answers
`{"value": <JWT>}` signed by a test issuer whose public key Vault trusts — what the runner does.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .jwt_issuer import JwtIssuer
from .ports import LOOPBACK, StartStop

_PATH = "/_apis/distributedtask/hubs/Actions/plans/plan/jobs/job/idtoken"


@dataclass(frozen=True)
class OidcRequest:
    authorized: bool
    audience: str | None
    api_version: str | None


class GithubOidcEndpoint(StartStop):
    """Issues a JWT for `subject` with the requested audience to holders of `request_token`."""

    def __init__(
        self,
        issuer: JwtIssuer,
        subject: str = "repo:org/ml:ref:refs/heads/main",
        claims: Mapping[str, Any] | None = None,
    ):
        self.issuer = issuer
        self.subject = subject
        self.claims = dict(claims or {})  # more claims, e.g. repository and ref
        self.request_token = f"ghs-request-{secrets.token_hex(12)}"
        self.issued: list[str] = []  # every JWT handed out, for leak checks
        self.requests: list[OidcRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """What the runner puts in ACTIONS_ID_TOKEN_REQUEST_URL (it carries a query already)."""
        assert self._server is not None, "not started"
        return f"http://{LOOPBACK}:{self._server.server_address[1]}{_PATH}?api-version=2.0"

    def env(self) -> dict[str, str]:
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": self.url,
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def start(self) -> GithubOidcEndpoint:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                authorized = self.headers.get("Authorization") == (
                    f"bearer {endpoint.request_token}"
                )
                audience = (query.get("audience") or [None])[0]
                with endpoint._lock:
                    endpoint.requests.append(
                        OidcRequest(authorized, audience, (query.get("api-version") or [None])[0])
                    )
                if parts.path != _PATH:
                    self._answer(404, {"message": "not found"})
                elif not authorized:
                    self._answer(401, {"message": "bad request token"})
                else:
                    jwt = endpoint.issuer.token(
                        endpoint.subject, audience or "https://github.com/org", **endpoint.claims
                    )
                    with endpoint._lock:
                        endpoint.issued.append(jwt)
                    self._answer(200, {"count": 1, "value": jwt})

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
