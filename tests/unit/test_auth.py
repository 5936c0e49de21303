"""The auth object on the wire: allowlist, header, one 401 replay, redirect stripping (SPEC §5, §6).

The backend here is an in-memory double (the auth object is under test); the HTTP server is a
real loopback server that injects the faults: 401s, redirects.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mlflow_secrets_auth.auth import SecretsAuth
from mlflow_secrets_auth.backends.base import FetchedSecret
from mlflow_secrets_auth.cache import CredentialCache
from mlflow_secrets_auth.errors import HostNotAllowedError
from mlflow_secrets_auth.hosts import HostPolicy, parse_allowed_hosts
from mlflow_secrets_auth.settings import VaultSettings
from mlflow_secrets_auth.source import CredentialSource


class RotatingBackend:
    """Serves ``values[i]`` on the i-th read (the last one repeats); counts reads."""

    name = "vault"

    def __init__(self, *values: str) -> None:
        self.values = list(values)
        self.reads = 0
        self._lock = threading.Lock()

    def fetch(self) -> FetchedSecret:
        with self._lock:
            value = self.values[min(self.reads, len(self.values) - 1)]
            self.reads += 1
        return FetchedSecret(value)


def make_auth(
    backend: RotatingBackend, allowed: str = "127.0.0.1", header: str | None = None
) -> SecretsAuth:
    settings = VaultSettings(addr="http://127.0.0.1:1", secret_path="secret/x")
    source = CredentialSource(backend, settings, CredentialCache())  # type: ignore[arg-type]
    return SecretsAuth(source, HostPolicy(parse_allowed_hosts(allowed), False), header)


def accept_only(token_header: str, valid: Callable[[], str]) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        if request.headers.get(token_header) == valid():
            return Response(request.get_data(), status=200)
        return Response("no", status=401)

    return handler


def test_header_attached_for_allowed_host(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api").respond_with_handler(
        accept_only("Authorization", lambda: "Bearer tok-1")
    )
    response = requests.get(httpserver.url_for("/api"), auth=make_auth(RotatingBackend("tok-1\n")))
    assert response.status_code == 200


def test_disallowed_host_gets_nothing_and_error_names_host_and_variable(
    httpserver: HTTPServer,
) -> None:
    backend = RotatingBackend("tok-1")
    with pytest.raises(HostNotAllowedError) as info:
        requests.get(httpserver.url_for("/api"), auth=make_auth(backend, allowed="other.example"))
    assert "127.0.0.1" in str(info.value)
    assert "MLFLOW_SECRETS_ALLOWED_HOSTS" in str(info.value)
    assert httpserver.log == []  # nothing was sent at all
    assert backend.reads == 0  # and the secret was not even read


def test_custom_header_carries_raw_token(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api").respond_with_handler(
        accept_only("X-Api-Key", lambda: "tok-1")
    )
    auth = make_auth(RotatingBackend("tok-1"), header="X-Api-Key")
    assert requests.get(httpserver.url_for("/api"), auth=auth).status_code == 200
    request = httpserver.log[0][0]
    assert "Authorization" not in request.headers


def test_401_refetches_and_replays_once_with_same_body(httpserver: HTTPServer) -> None:
    current = {"token": "Bearer new"}
    httpserver.expect_request("/api", method="POST").respond_with_handler(
        accept_only("Authorization", lambda: current["token"])
    )
    backend = RotatingBackend("old", "new")
    auth = make_auth(backend)
    auth.source.get()  # warm the cache with the soon-to-be-rejected "old"
    body = io.BytesIO(b"payload-bytes")
    response = requests.post(httpserver.url_for("/api"), data=body, auth=auth, timeout=5)
    assert response.status_code == 200
    assert response.content == b"payload-bytes"  # the replay carried the same body
    assert [r.status_code for r in response.history] == [401]
    assert backend.reads == 2
    assert len(httpserver.log) == 2
    # No marker header reached the server on the replay.
    replay_headers = set(httpserver.log[1][0].headers.keys())
    assert replay_headers <= set(httpserver.log[0][0].headers.keys())


def test_second_401_is_returned_to_caller(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api").respond_with_data("no", status=401)
    backend = RotatingBackend("old", "also-wrong")
    response = requests.get(httpserver.url_for("/api"), auth=make_auth(backend))
    assert response.status_code == 401
    assert len(response.history) == 1
    assert len(httpserver.log) == 2  # one original, exactly one replay


def test_401_with_unchanged_secret_is_not_replayed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api").respond_with_data("no", status=401)
    backend = RotatingBackend("same")
    response = requests.get(httpserver.url_for("/api"), auth=make_auth(backend))
    assert response.status_code == 401
    assert backend.reads == 2  # it did look for a fresh one
    assert len(httpserver.log) == 1  # but replaying the same credential would be pointless


def test_many_concurrent_401s_drop_the_credential_once(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api").respond_with_handler(
        accept_only("Authorization", lambda: "Bearer new")
    )
    backend = RotatingBackend("old", "new", "newer")
    auth = make_auth(backend)
    auth.source.get()
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(
                requests.get(httpserver.url_for("/api"), auth=auth, timeout=10).status_code
            )
        )
        for _ in range(16)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert statuses == [200] * 16
    assert backend.reads == 2  # "old" once, then exactly one refresh to "new"
    assert auth.source.cache.stats.invalidations == 1


@pytest.mark.parametrize("header", [None, "X-Api-Key"])
def test_cross_origin_redirect_strips_credentials(
    httpserver: HTTPServer, header: str | None
) -> None:
    other = HTTPServer(host="127.0.0.1", port=0)
    other.start()
    try:
        other.expect_request("/landing").respond_with_data("landed")
        httpserver.expect_request("/api").respond_with_data(
            "", status=302, headers={"Location": other.url_for("/landing")}
        )
        auth = make_auth(RotatingBackend("tok-1"), header=header)
        response = requests.get(httpserver.url_for("/api"), auth=auth)
        assert response.text == "landed"
        sent_first = httpserver.log[0][0].headers
        seen_by_other = other.log[0][0].headers
        assert sent_first.get(header or "Authorization")  # the allowed origin got it
        assert "Authorization" not in seen_by_other
        assert "X-Api-Key" not in seen_by_other
    finally:
        other.clear()
        other.stop()


def test_redirect_to_other_host_name_on_same_port_is_cross_origin(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/landing").respond_with_data("landed")
    target = httpserver.url_for("/landing").replace("127.0.0.1", "localhost")
    httpserver.expect_request("/api").respond_with_data(
        "", status=307, headers={"Location": target}
    )
    auth = make_auth(RotatingBackend("tok-1"), header="X-Api-Key")
    assert requests.get(httpserver.url_for("/api"), auth=auth).text == "landed"
    assert "X-Api-Key" in httpserver.log[0][0].headers
    assert "X-Api-Key" not in httpserver.log[1][0].headers


def test_same_origin_redirect_keeps_credentials(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/landing").respond_with_handler(
        accept_only("X-Api-Key", lambda: "tok-1")
    )
    httpserver.expect_request("/api").respond_with_data(
        "", status=302, headers={"Location": "/landing"}
    )
    auth = make_auth(RotatingBackend("tok-1"), header="X-Api-Key")
    assert requests.get(httpserver.url_for("/api"), auth=auth).status_code == 200


def test_401_from_foreign_origin_after_redirect_is_not_answered_with_credentials(
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/landing").respond_with_data("who are you", status=401)
    target = httpserver.url_for("/landing").replace("127.0.0.1", "localhost")
    httpserver.expect_request("/api").respond_with_data(
        "", status=302, headers={"Location": target}
    )
    backend = RotatingBackend("tok-1", "tok-2")
    response = requests.get(httpserver.url_for("/api"), auth=make_auth(backend))
    assert response.status_code == 401
    assert backend.reads == 1  # no refresh, no replay towards the foreign origin
    assert all("Authorization" not in entry[0].headers for entry in httpserver.log[1:])


def test_repr_shows_no_secret() -> None:
    auth = make_auth(RotatingBackend("very-secret-token"))
    auth.source.get()
    for text in (repr(auth), repr(auth.source), repr(auth.source.cache)):
        assert "very-secret-token" not in text


def test_401_on_a_streamed_body_is_not_replayed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/upload", method="POST").respond_with_data("no", status=401)
    backend = RotatingBackend("old", "new")
    auth = make_auth(backend)

    def stream():  # type: ignore[no-untyped-def]
        yield b"chunk-1"
        yield b"chunk-2"

    response = requests.post(httpserver.url_for("/upload"), data=stream(), auth=auth)
    assert response.status_code == 401
    assert len(httpserver.log) == 1  # an exhausted stream is never re-sent
    assert auth.source.get().authorization == "Bearer new"  # but the next request is fresh


def test_replay_answered_by_cross_origin_redirect_carries_no_credentials(
    httpserver: HTTPServer,
) -> None:
    target = httpserver.url_for("/landing").replace("127.0.0.1", "localhost")
    httpserver.expect_request("/landing").respond_with_data("landed")

    def handler(request: Request) -> Response:
        if request.headers.get("X-Api-Key") == "new":
            return Response("", status=302, headers={"Location": target})
        return Response("no", status=401)

    httpserver.expect_request("/api").respond_with_handler(handler)
    auth = make_auth(RotatingBackend("old", "new"), header="X-Api-Key")
    auth.source.get()
    response = requests.get(httpserver.url_for("/api"), auth=auth)
    assert response.text == "landed"
    landing = [entry[0] for entry in httpserver.log if entry[0].path == "/landing"]
    assert len(landing) == 1
    assert "X-Api-Key" not in landing[0].headers


def test_log_lines_follow_the_documented_shapes(
    httpserver: HTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    httpserver.expect_request("/api").respond_with_data("ok")
    auth = make_auth(RotatingBackend("tok-1"))
    for _ in range(3):
        requests.get(httpserver.url_for("/api"), auth=auth)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("Authentication successful (provider=vault, auth_mode=bearer)") == 1
    assert any(
        m.startswith("Secret fetched successfully (provider=vault, cache_hit=false")
        for m in messages
    )
    with pytest.raises(HostNotAllowedError):
        requests.get(httpserver.url_for("/api"), auth=make_auth(RotatingBackend("t"), "x.example"))
    refused = [r for r in caplog.records if r.getMessage() == "Host not allowed: 127.0.0.1"]
    assert len(refused) == 1 and refused[0].levelno == logging.WARNING
