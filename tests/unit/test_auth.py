"""The auth object on the wire: allowlist, header, one 401 replay, redirect stripping (SPEC §5, §6).

The backend here is an in-memory double (the auth object is under test); the HTTP servers are
real loopback servers that inject the faults: 401s, redirects, an SSO proxy's login pages.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Callable, Iterator

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from mlflow_secrets_auth.auth import SecretsAuth, is_api_url
from mlflow_secrets_auth.backends.base import FetchedSecret
from mlflow_secrets_auth.backends.vault_settings import VaultSettings
from mlflow_secrets_auth.cache import CredentialCache
from mlflow_secrets_auth.errors import HostNotAllowedError, LoginPageError, SecretsAuthError
from mlflow_secrets_auth.hosts import HostPolicy, parse_allowed_hosts
from mlflow_secrets_auth.source import CredentialSource

from support.recording_server import RecordingServer
from support.sso_proxy import SsoProxy


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
    backend: RotatingBackend,
    allowed: str = "127.0.0.1",
    header: str | None = None,
    allow_http: bool = False,
) -> SecretsAuth:
    settings = VaultSettings(addr="http://127.0.0.1:1", secret_path="secret/x")
    source = CredentialSource(backend, settings, CredentialCache())  # type: ignore[arg-type]
    return SecretsAuth(source, HostPolicy(parse_allowed_hosts(allowed), allow_http), header)


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


# -- login pages (SPEC §7): an SSO proxy's HTML page or cross-origin redirect counts as a 401 --

API = "/api/2.0/mlflow/experiments/search"
LOGIN_PAGE_TEXT = "an HTML login page answered instead of the MLflow API"
JSON_OK = {"experiments": []}


@pytest.fixture
def upstream(recording_server: Callable[[], RecordingServer]) -> RecordingServer:
    """The server behind the SSO proxy: answers every path with JSON."""
    server = recording_server()
    server.set_default_response(200, JSON_OK)
    return server


@pytest.fixture
def sso(upstream: RecordingServer) -> Iterator[SsoProxy]:
    with SsoProxy(upstream.url) as proxy:
        yield proxy


@pytest.fixture
def login_site(recording_server: Callable[[], RecordingServer]) -> RecordingServer:
    """The identity provider's login page, on another origin."""
    server = recording_server()
    server.set_default_response(200, "<html>sign in</html>", {"Content-Type": "text/html"})
    return server


@pytest.mark.parametrize(
    "url", [f"http://h{API}", "https://h:8443/mlflow/api/2.0/x", "http://h/ajax-api/3.0/y?z=1"]
)
def test_api_urls_are_recognised_under_any_prefix(url: str) -> None:
    assert is_api_url(url)


@pytest.mark.parametrize(
    "url", ["http://h/", "http://h/static-files/app.js", "http://h/get-artifact?path=a%2Fapi%2Fb"]
)
def test_other_urls_are_not_api_requests(url: str) -> None:
    assert not is_api_url(url)


def test_login_page_is_refreshed_and_replayed_once_with_the_same_body(
    sso: SsoProxy, upstream: RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    backend = RotatingBackend("old", "new")
    auth = make_auth(backend)
    auth.source.get()  # the cache holds "old", which the proxy now considers stale
    sso.refuse("Bearer old")
    body = io.BytesIO(b"payload-bytes")
    url = sso.url + "/api/2.0/mlflow/runs/create"
    response = requests.post(url, data=body, auth=auth, timeout=5)
    assert response.status_code == 200
    assert response.json() == JSON_OK
    assert sso.outcomes() == ["login-page", "forwarded"]
    assert backend.reads == 2
    [seen] = upstream.requests
    assert seen.body == b"payload-bytes"  # the replay carried the same body
    assert seen.header("Authorization") == "Bearer new"
    assert [r.headers["Content-Type"] for r in response.history] == ["text/html; charset=utf-8"]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("retrying once" in m for m in messages) == 1
    assert sum(m.startswith("Authentication successful") for m in messages) == 1  # "new" only


def test_login_page_replay_goes_through_the_same_http_proxy(
    sso: SsoProxy, upstream: RecordingServer
) -> None:
    """The replay gets the same send arguments: here `proxies`, without which it cannot connect
    (mlflow.invalid does not resolve)."""
    backend = RotatingBackend("old", "new")
    auth = make_auth(backend, allowed="mlflow.invalid", allow_http=True)
    auth.source.get()
    sso.refuse("Bearer old")
    response = requests.get(
        f"http://mlflow.invalid{API}", auth=auth, proxies={"http": sso.url}, timeout=5
    )
    assert response.json() == JSON_OK
    assert sso.outcomes() == ["login-page", "forwarded"]
    assert [r.path for r in upstream.requests] == [API]


@pytest.mark.parametrize("header", [None, "X-Api-Key"])
def test_cross_origin_login_redirect_is_refreshed_and_never_followed(
    upstream: RecordingServer, login_site: RecordingServer, header: str | None
) -> None:
    backend = RotatingBackend("old", "new")
    auth = make_auth(backend, header=header)
    auth.source.get()
    with SsoProxy(upstream.url, header or "Authorization") as sso:
        sso.refuse("old" if header else "Bearer old")
        sso.redirect_to(login_site.localhost_url + "/login")  # another host name: another origin
        response = requests.get(sso.url + API, auth=auth, timeout=5)
    assert response.json() == JSON_OK
    assert sso.outcomes() == ["redirect", "forwarded"]
    assert backend.reads == 2
    assert login_site.requests == []  # an API request is never sent to a login page
    assert upstream.requests[0].header(header or "Authorization") == (
        "new" if header else "Bearer new"
    )


def test_same_origin_redirect_to_a_login_page_replays_the_api_request(
    sso: SsoProxy, upstream: RecordingServer
) -> None:
    backend = RotatingBackend("old", "new")
    auth = make_auth(backend)
    auth.source.get()
    sso.refuse("Bearer old")
    sso.redirect_to(sso.own_login_url)  # 302 to /sso/login on the same origin, then HTML
    response = requests.post(
        sso.url + "/api/2.0/mlflow/experiments/create", json={"name": "e"}, auth=auth, timeout=5
    )
    assert response.json() == JSON_OK
    assert sso.outcomes() == ["redirect", "login-page", "forwarded"]
    [seen] = upstream.requests  # the API request itself was replayed, not the login page
    assert (seen.method, seen.path, seen.body) == (
        "POST",
        "/api/2.0/mlflow/experiments/create",
        b'{"name": "e"}',
    )
    assert seen.header("Authorization") == "Bearer new"


def test_persisting_login_page_raises_naming_the_host(
    sso: SsoProxy, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    backend = RotatingBackend("old-secret-value", "new-secret-value")
    sso.refuse_all()
    with pytest.raises(LoginPageError) as info:
        requests.get(sso.url + API, auth=make_auth(backend), timeout=5)
    message = str(info.value)
    assert message.startswith(LOGIN_PAGE_TEXT)
    assert sso.url.removeprefix("http://") in message  # the host, with its port
    assert f"GET {API} with text/html (HTTP 200)" in message
    assert "even after one retry" in message
    assert "MLFLOW_TRACKING_URI" in message
    assert "secret-value" not in message + repr(info.value)
    assert isinstance(info.value, SecretsAuthError)
    assert sso.outcomes() == ["login-page", "login-page"]  # exactly one replay
    messages = [r.getMessage() for r in caplog.records]
    assert not any(m.startswith("Authentication successful") for m in messages)
    assert any(m.startswith(LOGIN_PAGE_TEXT) for m in messages)


def test_login_page_with_an_unchanged_secret_is_not_replayed(sso: SsoProxy) -> None:
    backend = RotatingBackend("same")
    sso.refuse_all()
    with pytest.raises(LoginPageError, match="the secret store still holds the same one"):
        requests.get(sso.url + API, auth=make_auth(backend), timeout=5)
    assert backend.reads == 2  # it did look for a fresh one
    assert sso.outcomes() == ["login-page"]  # but sent nothing twice


def test_persisting_cross_origin_redirect_raises_naming_both_origins(
    sso: SsoProxy, login_site: RecordingServer
) -> None:
    sso.refuse_all()
    sso.redirect_to(login_site.localhost_url + "/login")
    with pytest.raises(LoginPageError) as info:
        requests.get(sso.url + API, auth=make_auth(RotatingBackend("a", "b")), timeout=5)
    message = str(info.value)
    assert sso.url.removeprefix("http://") in message
    assert "a redirect (HTTP 302) to another origin" in message
    assert f"localhost:{login_site.port}" in message
    assert sso.outcomes() == ["redirect", "redirect"]
    assert login_site.requests == []


def test_replayed_401_answered_by_a_login_page_raises(httpserver: HTTPServer) -> None:
    def handler(request: Request) -> Response:
        if request.headers.get("Authorization") == "Bearer new":
            return Response("<html>sign in</html>", status=200, content_type="text/html")
        return Response("no", status=401)

    httpserver.expect_request(API).respond_with_handler(handler)
    with pytest.raises(LoginPageError, match="even after one retry"):
        requests.get(httpserver.url_for(API), auth=make_auth(RotatingBackend("old", "new")))
    assert len(httpserver.log) == 2


def test_login_page_on_a_streamed_body_is_not_replayed(
    recording_server: Callable[[], RecordingServer],
) -> None:
    server = recording_server()
    server.set_default_response(200, "<html>sign in</html>", {"Content-Type": "text/html"})
    auth = make_auth(RotatingBackend("old", "new"))

    def stream():  # type: ignore[no-untyped-def]
        yield b"chunk-1"
        yield b"chunk-2"

    url = server.url + "/api/2.0/mlflow-artifacts/mpu/create"
    with pytest.raises(LoginPageError, match="stream that cannot be sent twice"):
        requests.post(url, data=stream(), auth=auth, timeout=5)
    assert len(server.requests) == 1  # an exhausted stream is never re-sent
    assert auth.source.get().authorization == "Bearer new"  # but the next request is fresh


def test_non_api_requests_keep_html_answers_and_follow_redirects_without_credentials(
    sso: SsoProxy, login_site: RecordingServer
) -> None:
    """The MLflow UI and other pages: no refresh, no error, and still no credential elsewhere."""
    backend = RotatingBackend("old", "new")
    auth = make_auth(backend)
    sso.refuse_all()
    page = requests.get(sso.url + "/", auth=auth, timeout=5)
    assert page.status_code == 200 and "Sign in" in page.text
    sso.redirect_to(login_site.localhost_url + "/login")
    landed = requests.get(sso.url + "/static-files/index.html", auth=auth, timeout=5)
    assert landed.text == "<html>sign in</html>"
    [followed] = login_site.requests
    assert not followed.has_header("Authorization")
    assert backend.reads == 1


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (
            "/api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/page.html",
            {"Content-Type": "text/html", "Content-Disposition": "attachment; filename=page.html"},
        ),
        (
            "/ajax-api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/page.html",
            {"Content-Type": "text/html"},
        ),
        (
            "/api/2.0/mlflow/get-artifact",
            {"Content-Type": "text/html", "Content-Disposition": "attachment"},
        ),
    ],
)
def test_html_files_downloaded_from_mlflow_are_not_login_pages(
    recording_server: Callable[[], RecordingServer], path: str, headers: dict[str, str]
) -> None:
    server = recording_server()
    server.set_response(path, 200, "<html>my report</html>", headers)
    backend = RotatingBackend("tok")
    response = requests.get(server.url + path, auth=make_auth(backend), timeout=5)
    assert response.text == "<html>my report</html>"
    assert backend.reads == 1
    assert len(server.requests) == 1


@pytest.mark.parametrize("status", [404, 502, 503])
def test_html_error_pages_are_returned_as_they_are(
    recording_server: Callable[[], RecordingServer], status: int
) -> None:
    """A gateway's 502 page is not a login page: MLflow's own retries and messages apply."""
    server = recording_server()
    server.set_default_response(status, "<html>bad gateway</html>", {"Content-Type": "text/html"})
    backend = RotatingBackend("tok", "other")
    response = requests.get(server.url + API, auth=make_auth(backend), timeout=5)
    assert response.status_code == status
    assert backend.reads == 1


def test_artifact_upload_answered_by_a_login_page_is_replayed(
    sso: SsoProxy, upstream: RecordingServer
) -> None:
    """Only artifact downloads may be HTML: an upload must not be lost to a login page."""
    backend = RotatingBackend("old", "new")
    auth = make_auth(backend)
    auth.source.get()
    sso.refuse("Bearer old")
    path = "/api/2.0/mlflow-artifacts/artifacts/0/run/artifacts/model.pkl"
    response = requests.put(sso.url + path, data=b"model-bytes", auth=auth, timeout=5)
    assert response.status_code == 200
    assert sso.outcomes() == ["login-page", "forwarded"]
    [seen] = upstream.requests
    assert (seen.method, seen.path, seen.body) == ("PUT", path, b"model-bytes")


def test_login_page_can_be_returned_for_the_caller_to_judge(
    sso: SsoProxy, login_site: RecordingServer
) -> None:
    """doctor's dry run: the same refresh and replay, then the answer instead of an error."""
    backend = RotatingBackend("old", "new")
    plain = make_auth(backend)
    auth = SecretsAuth(plain.source, plain.policy, raise_on_login_page=False)
    sso.refuse_all()
    page = requests.get(sso.url + API, auth=auth, timeout=5)
    assert "Sign in" in page.text
    assert sso.outcomes() == ["login-page", "login-page"]
    sso.redirect_to(login_site.localhost_url + "/login")
    landed = requests.get(sso.url + API, auth=auth, timeout=5)
    assert landed.text == "<html>sign in</html>"  # followed, as requests does
    [followed] = login_site.requests
    assert not followed.has_header("Authorization")
