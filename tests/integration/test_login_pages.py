"""Login pages on MLflow's real request path (SPEC §7).

A loopback SSO proxy stands in front of the real MLflow server with auth and answers a credential
it considers stale with its login page (200 `text/html`) or a 302 to another origin's `/login`.
The credential comes from real OpenBao, through ``MLFLOW_TRACKING_AUTH=mlflow_secrets_auth``;
a counting proxy in front of OpenBao tells how often the secret was read.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import mlflow_secrets_auth
from mlflow_secrets_auth import runtime
from mlflow_secrets_auth.errors import LoginPageError

from support.counting_proxy import CountingProxy
from support.leaks import LeakCheck
from support.mlflow_server import MlflowAuthServer
from support.openbao import OpenBaoServer
from support.recording_server import RecordingServer
from support.sso_proxy import SsoProxy

pytestmark = pytest.mark.integration

LOGIN_PAGE_TEXT = "an HTML login page answered instead of the MLflow API"
JSON_ERRORS = ("JSONDecodeError", "Expecting value", "valid JSON")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Setup:
    """An MLflow user with two valid API tokens; OpenBao holds the first; MLflow is reached
    through the SSO proxy, and OpenBao through a counting proxy."""

    def __init__(
        self,
        openbao: OpenBaoServer,
        server: MlflowAuthServer,
        sso: SsoProxy,
        vault_proxy: CountingProxy,
        login_site: RecordingServer,
        vault_env: Callable[..., None],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        self.openbao, self.server, self.sso, self.login_site = openbao, server, sso, login_site
        self.vault_proxy = vault_proxy
        self.username = unique("sso-user")
        server.create_user(self.username, uuid.uuid4().hex)
        self.first, self.second = unique("tok-first"), unique("tok-second")
        server.set_tokens({self.first: self.username, self.second: self.username})
        self.path = unique("mlflow/sso")
        openbao.write_secret("secret", self.path, {"token": self.first})
        vault_env(
            f"secret/{self.path}",
            VAULT_ADDR=vault_proxy.url,
            MLFLOW_VAULT_AUTH_MODE="bearer",
            MLFLOW_TRACKING_AUTH="mlflow_secrets_auth",
            MLFLOW_TRACKING_URI=sso.url,
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        )

    def answer_with(self, mode: str) -> None:
        self.sso.redirect_to(
            self.login_site.localhost_url + "/login" if mode == "redirect" else None
        )

    def rotate(self) -> None:
        """The store gets the second token; the proxy now treats the first as stale."""
        self.openbao.write_secret("secret", self.path, {"token": self.second})
        self.sso.refuse(f"Bearer {self.first}")

    def reads(self) -> int:
        return self.vault_proxy.count("GET", f"/v1/secret/data/{self.path}")

    def created_by_user(self, experiment_id: str) -> bool:
        permission = self.server.admin_request(
            "GET",
            f"/api/3.0/mlflow/users/permissions/get?username={self.username}"
            f"&resource_type=experiment&resource_id={experiment_id}",
        )
        return bool(permission["permission"] == "MANAGE")  # MLflow grants the creator MANAGE


@pytest.fixture
def setup(
    openbao: OpenBaoServer,
    mlflow_server: MlflowAuthServer,
    vault_env: Callable[..., None],
    recording_server: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Setup]:
    login_site = recording_server()
    login_site.set_default_response(200, "<html>sign in</html>", {"Content-Type": "text/html"})
    with SsoProxy(mlflow_server.url) as sso, CountingProxy(openbao.addr) as vault_proxy:
        yield Setup(openbao, mlflow_server, sso, vault_proxy, login_site, vault_env, monkeypatch)


@pytest.mark.parametrize("mode", ["page", "redirect"])
def test_stale_credential_recovers_after_one_refresh(setup: Setup, mode: str) -> None:
    setup.answer_with(mode)
    MlflowClient().search_experiments()  # the cache now holds the first token
    assert setup.reads() == 1
    setup.rotate()

    name = unique("sso")
    experiment_id = mlflow.create_experiment(name)  # login answer, one refresh, one replay

    assert setup.reads() == 2  # the store was read again exactly once
    answered = "login-page" if mode == "page" else "redirect"
    assert setup.sso.outcomes("/api/") == ["forwarded", answered, "forwarded"]
    assert runtime.CACHE.stats.invalidations == 1
    got = setup.server.admin_request(
        "GET", f"/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}"
    )
    assert got["experiment"]["name"] == name
    assert setup.created_by_user(experiment_id)
    assert setup.login_site.requests == []  # API requests never go to the login page
    MlflowClient().search_experiments()  # and later calls use the fresh token directly
    assert setup.reads() == 2
    assert setup.sso.outcomes("/api/")[-1] == "forwarded"


@pytest.mark.parametrize("mode", ["page", "redirect"])
def test_persisting_login_page_fails_naming_it_and_the_host(setup: Setup, mode: str) -> None:
    setup.answer_with(mode)
    setup.sso.refuse_all()  # the proxy's session expired, whatever the credential

    with pytest.raises(MlflowException) as info:
        MlflowClient().search_experiments()

    message = str(info.value)
    assert LOGIN_PAGE_TEXT in message
    assert setup.sso.url.removeprefix("http://") in message  # the host, with its port
    assert not any(marker in message for marker in JSON_ERRORS)
    assert isinstance(info.value.__context__, LoginPageError)
    if mode == "redirect":
        assert f"localhost:{setup.login_site.port}" in message  # where it was sent
    assert setup.reads() == 2  # first fetch, then one refresh
    assert "the secret store still holds the same one" in message
    assert len(setup.sso.outcomes("/api/")) == 1  # the same token again: nothing sent twice
    assert setup.login_site.requests == []


def test_persisting_after_a_rotation_replays_once_then_fails(setup: Setup) -> None:
    MlflowClient().search_experiments()
    setup.rotate()
    setup.sso.refuse(f"Bearer {setup.second}")  # the new one is refused too

    with pytest.raises(MlflowException) as info:
        mlflow.create_experiment(unique("never"))

    assert LOGIN_PAGE_TEXT in str(info.value)
    assert "even after one retry" in str(info.value)
    assert setup.reads() == 2
    assert setup.sso.outcomes("/api/") == ["forwarded", "login-page", "login-page"]


def test_login_redirect_target_never_receives_the_credential(setup: Setup) -> None:
    setup.answer_with("redirect")
    setup.sso.refuse_all()
    with pytest.raises(MlflowException, match=LOGIN_PAGE_TEXT):
        MlflowClient().search_experiments()
    assert setup.login_site.requests == []  # the API request was not sent there at all
    # A page outside the API (the UI) follows the redirect, without the credential.
    page = requests.get(setup.sso.url + "/", auth=mlflow_secrets_auth.get_auth(), timeout=30)
    assert page.text == "<html>sign in</html>"
    [followed] = setup.login_site.requests
    assert followed.path == "/login"
    assert not followed.has_header("Authorization")
    sent = "\n".join(f"{k}: {v}" for k, v in followed.raw_headers) + followed.query
    assert setup.first not in sent


def test_html_artifacts_and_the_ui_pass_through_untouched(setup: Setup) -> None:
    """Only MLflow API answers are checked: an .html artifact and the UI are no login pages."""
    html = "<!doctype html><html><body>my report</body></html>\n"
    experiment_id = mlflow.create_experiment(unique("html"))
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_text(html, "report.html")
    assert mlflow.artifacts.load_text(f"{run.info.artifact_uri}/report.html") == html
    ui = requests.get(setup.sso.url + "/", auth=mlflow_secrets_auth.get_auth(), timeout=30)
    assert ui.headers["Content-Type"].startswith("text/html")
    assert runtime.CACHE.stats.invalidations == 0
    assert setup.reads() == 1
    assert set(setup.sso.outcomes()) == {"forwarded"}


def test_login_page_flows_leak_nothing_at_debug(
    setup: Setup,
    leak_check: LeakCheck,
    openbao: OpenBaoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_LOG_LEVEL", "DEBUG")
    leak_check.begin()
    errors: list[BaseException] = []
    setup.answer_with("page")
    MlflowClient().search_experiments()
    setup.rotate()
    mlflow.create_experiment(unique("leak"))  # login page, refresh, replay: success
    setup.answer_with("redirect")
    setup.sso.refuse_all()
    for call in (MlflowClient().search_experiments, lambda: mlflow.create_experiment("x")):
        with pytest.raises(MlflowException) as info:
            call()
        errors += [info.value, info.value.__context__ or info.value]
    assert "retrying once" in leak_check.log_text
    leak_check.assert_clean([setup.first, setup.second, openbao.root_token], *errors)
