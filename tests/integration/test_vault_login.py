"""Vault login for production (SPEC §3) against a real OpenBao: JWT/OIDC and GitHub Actions,
the AppRole secret id file, the Vault CLI's ~/.vault-token, a forced method, renewal and
re-login, revocation, expired user tokens and Vault's transient answers.

Every flow runs at DEBUG and ends by searching all captured output for the secrets it used
(stored credential, JWT, secret id, request token) and for anything shaped like a Vault token.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import mlflow_secrets_auth
from mlflow_secrets_auth.backends.vault import VaultStore
from mlflow_secrets_auth.errors import BackendError
from mlflow_secrets_auth.settings import load_general, load_store_settings

from support.counting_proxy import CountingProxy
from support.github_oidc import GithubOidcEndpoint
from support.jwt_issuer import JwtIssuer
from support.leaks import LeakCheck
from support.mlflow_server import MlflowAuthServer
from support.openbao import OpenBaoServer
from support.recording_server import RecordingServer

if TYPE_CHECKING:  # fixtures' types, defined in this directory's conftest.py
    from conftest import MlflowRunCheck, VaultEnv

pytestmark = pytest.mark.integration

AUDIENCE = "https://vault.test/mlflow"
#: What an OpenBao/Vault token looks like: none may appear in any output.
VAULT_TOKEN_SHAPE = re.compile(r"\b(?:hv[sbr]|[sbr])\.[A-Za-z0-9]{20,}")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sink(recording_server: Callable[[], RecordingServer]) -> RecordingServer:
    return recording_server()


@pytest.fixture(scope="module")
def jwt_auth(openbao: OpenBaoServer) -> tuple[JwtIssuer, str]:
    """OpenBao's `jwt` auth method at a mount of its own, trusting a key made for this module."""
    issuer, mount = JwtIssuer(), unique("jwt-ci")
    openbao.enable_jwt_auth([issuer.public_pem], mount, bound_issuer=issuer.issuer)
    return issuer, mount


def bearer_sent(sink: RecordingServer) -> str | None:
    requests.get(sink.url + "/api", auth=mlflow_secrets_auth.get_auth(), timeout=30)
    return sink.requests[-1].header("authorization")


def failure(sink: RecordingServer) -> BackendError:
    with pytest.raises(BackendError) as info:
        requests.get(sink.url + "/api", auth=mlflow_secrets_auth.get_auth(), timeout=30)
    assert sink.requests == []  # fail closed: nothing was sent unauthenticated
    return info.value


def readable_secret(openbao: OpenBaoServer, payload: dict[str, str]) -> tuple[str, str]:
    """A KV v2 secret and a policy that may read only it: (path below secret/, policy)."""
    path, policy = unique("login/mlflow"), unique("read")
    openbao.write_secret("secret", path, payload)
    openbao.create_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
    return path, policy


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.05)


def login_messages(leak_check: LeakCheck) -> list[str]:
    return [line for line in leak_check.log_text.splitlines() if "Vault login succeeded" in line]


# -- JWT / OIDC ----------------------------------------------------------------------------------


def test_jwt_login_from_a_file_that_is_read_again_at_each_login(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    jwt_auth: tuple[JwtIssuer, str],
    sink: RecordingServer,
    leak_check: LeakCheck,
    tmp_path: Path,
) -> None:
    issuer, mount = jwt_auth
    path, policy = readable_secret(openbao, {"token": "from-jwt-login"})
    role = unique("ci")
    openbao.create_jwt_role(role, [policy], bound_audiences=[AUDIENCE], mount=mount)
    first, second = issuer.token("job-1", AUDIENCE), issuer.token("job-2", AUDIENCE)
    token_file = tmp_path / "ci-jwt"
    token_file.write_text(first + "\n")
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN="",
        MLFLOW_VAULT_JWT_ROLE=role,
        MLFLOW_VAULT_JWT_TOKEN_PATH=str(token_file),
        MLFLOW_VAULT_JWT_MOUNT=mount,
        MLFLOW_VAULT_TTL_SEC="0.2",
    )
    before = openbao.token_accessors()
    leak_check.begin()
    assert bearer_sent(sink) == "Bearer from-jwt-login"
    (accessor,) = openbao.token_accessors() - before
    assert openbao.lookup_accessor(accessor)["display_name"] == f"{mount}-job-1"

    # CI rewrote the file; the token in use is revoked, so the next fetch must log in again.
    token_file.write_text(second + "\n")
    openbao.revoke_accessor(accessor)

    def logged_in_as_job_2() -> bool:
        assert bearer_sent(sink) == "Bearer from-jwt-login"
        fresh = openbao.token_accessors() - before
        names = {openbao.lookup_accessor(a)["display_name"] for a in fresh}
        return f"{mount}-job-2" in names

    wait_for(logged_in_as_job_2, "a login with the rewritten JWT file")
    assert len(login_messages(leak_check)) == 2
    leak_check.assert_clean([first, second], patterns=[VAULT_TOKEN_SHAPE])


def test_jwt_from_a_variable_logs_an_mlflow_run_end_to_end(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    jwt_auth: tuple[JwtIssuer, str],
    mlflow_server: MlflowAuthServer,
    mlflow_run_check: MlflowRunCheck,
    monkeypatch: pytest.MonkeyPatch,
    leak_check: LeakCheck,
) -> None:
    issuer, mount = jwt_auth
    username, password = unique("jwt-user"), f"pw-{uuid.uuid4().hex}"
    mlflow_server.create_user(username, password)
    path, policy = readable_secret(openbao, {"username": username, "password": password})
    role = unique("ci")
    openbao.create_jwt_role(role, [policy], bound_audiences=[AUDIENCE], mount=mount)
    jwt = issuer.token("pipeline-42", AUDIENCE)
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN="",
        MLFLOW_VAULT_JWT_ROLE=role,
        MLFLOW_VAULT_JWT_TOKEN=jwt,
        MLFLOW_VAULT_JWT_MOUNT=mount,
        MLFLOW_VAULT_AUTH_MODE="basic",
        MLFLOW_TRACKING_AUTH="mlflow_secrets_auth",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    leak_check.begin()
    run = mlflow_run_check.log(mlflow_server.url, "vault-jwt")
    # The server saw every request as this user: none went out unauthenticated.
    mlflow_run_check.assert_visible_to_admin(mlflow_server, run, "vault-jwt", username)
    assert len(login_messages(leak_check)) == 1
    leak_check.assert_clean([jwt, password], patterns=[VAULT_TOKEN_SHAPE])


def test_wrong_audience_names_the_jwt_login_and_role_and_sends_nothing_to_mlflow(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    jwt_auth: tuple[JwtIssuer, str],
    mlflow_server: MlflowAuthServer,
    leak_check: LeakCheck,
) -> None:
    issuer, mount = jwt_auth
    path, policy = readable_secret(openbao, {"token": "never-sent"})
    role = unique("ci")
    openbao.create_jwt_role(role, [policy], bound_audiences=[AUDIENCE], mount=mount)
    jwt = issuer.token("job-9", "https://somewhere-else.example")
    with CountingProxy(mlflow_server.url) as mlflow_front:
        vault_env(
            f"secret/{path}",
            VAULT_TOKEN="",
            MLFLOW_VAULT_JWT_ROLE=role,
            MLFLOW_VAULT_JWT_TOKEN=jwt,
            MLFLOW_VAULT_JWT_MOUNT=mount,
            MLFLOW_TRACKING_AUTH="mlflow_secrets_auth",
            MLFLOW_TRACKING_URI=mlflow_front.url,
            MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
        )
        leak_check.begin()
        with pytest.raises((BackendError, MlflowException)) as info:
            MlflowClient().search_experiments()
        assert sum(mlflow_front.counts.values()) == 0  # MLflow never saw a request
    message = str(info.value)
    assert "login failed" in message
    assert f"jwt login as role {role}" in message
    assert f"MLFLOW_VAULT_JWT_ROLE={role}" in message
    assert "bound_audiences" in message
    leak_check.assert_clean([jwt], info.value, patterns=[VAULT_TOKEN_SHAPE])


@pytest.fixture
def github_oidc(jwt_auth: tuple[JwtIssuer, str]) -> Iterator[GithubOidcEndpoint]:
    with GithubOidcEndpoint(jwt_auth[0]) as endpoint:
        yield endpoint


def test_github_actions_oidc_token_is_requested_for_the_audience(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    jwt_auth: tuple[JwtIssuer, str],
    github_oidc: GithubOidcEndpoint,
    sink: RecordingServer,
    leak_check: LeakCheck,
) -> None:
    _, mount = jwt_auth
    path, policy = readable_secret(openbao, {"token": "from-github-actions"})
    role = unique("gha")
    openbao.create_jwt_role(role, [policy], bound_audiences=[AUDIENCE], mount=mount)
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN="",
        MLFLOW_VAULT_JWT_ROLE=role,
        MLFLOW_VAULT_JWT_MOUNT=mount,
        MLFLOW_VAULT_JWT_AUDIENCE=AUDIENCE,
        **github_oidc.env(),
    )
    leak_check.begin()
    assert bearer_sent(sink) == "Bearer from-github-actions"
    assert [(r.authorized, r.audience, r.api_version) for r in github_oidc.requests] == [
        (True, AUDIENCE, "2.0")
    ]
    leak_check.assert_clean(
        [github_oidc.request_token, *github_oidc.issued], patterns=[VAULT_TOKEN_SHAPE]
    )


def test_github_actions_refusal_is_a_login_error_naming_the_permission(
    vault_env: VaultEnv,
    jwt_auth: tuple[JwtIssuer, str],
    github_oidc: GithubOidcEndpoint,
    sink: RecordingServer,
    leak_check: LeakCheck,
) -> None:
    wrong = "not-the-request-token-value"
    vault_env(
        "secret/unused/path",
        VAULT_TOKEN="",
        MLFLOW_VAULT_JWT_ROLE="gha",
        MLFLOW_VAULT_JWT_MOUNT=jwt_auth[1],
        ACTIONS_ID_TOKEN_REQUEST_URL=github_oidc.url,
        ACTIONS_ID_TOKEN_REQUEST_TOKEN=wrong,
    )
    leak_check.begin()
    error = failure(sink)
    assert error.step == "login"
    assert "HTTP 401" in error.detail
    assert "ACTIONS_ID_TOKEN_REQUEST_URL" in error.detail
    assert "id-token: write" in error.fix
    assert [r.authorized for r in github_oidc.requests] == [False]
    leak_check.assert_clean([wrong], error)


# -- AppRole secret id file, ~/.vault-token, forced method -----------------------------------------


def test_approle_secret_id_from_a_file_read_again_at_each_login(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    sink: RecordingServer,
    leak_check: LeakCheck,
    tmp_path: Path,
) -> None:
    path, policy = readable_secret(openbao, {"token": "approle-from-file"})
    openbao.enable_approle()
    role = unique("role")
    role_id, first = openbao.create_approle(role, [policy])
    secret_id_file = tmp_path / "secret-id"
    secret_id_file.write_text(first + "\n")
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN="",
        VAULT_ROLE_ID=role_id,
        MLFLOW_VAULT_SECRET_ID_PATH=str(secret_id_file),
        MLFLOW_VAULT_TTL_SEC="0.2",
    )
    before = openbao.token_accessors()
    leak_check.begin()
    assert bearer_sent(sink) == "Bearer approle-from-file"

    # The secret id is rotated: the old one destroyed, the new one delivered to the file.
    _, second = openbao.create_approle(role, [policy])
    openbao.request(
        "POST", f"auth/approle/role/{role}/secret-id/destroy", json={"secret_id": first}
    )
    secret_id_file.write_text(second)
    for accessor in openbao.token_accessors() - before:
        openbao.revoke_accessor(accessor)

    def logged_in_again() -> bool:
        assert bearer_sent(sink) == "Bearer approle-from-file"
        return len(login_messages(leak_check)) == 2

    wait_for(logged_in_again, "a login with the new secret id")
    leak_check.assert_clean([first, second], patterns=[VAULT_TOKEN_SHAPE])


def test_vault_cli_token_file_is_the_fallback_and_is_read_again(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    sink: RecordingServer,
    leak_check: LeakCheck,
    tmp_path: Path,
) -> None:
    path, policy = readable_secret(openbao, {"token": "via-cli-token"})
    first, second = openbao.create_token([policy]), openbao.create_token([policy])
    (tmp_path / ".vault-token").write_text(first)  # what `vault login` leaves
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN="",
        HOME=str(tmp_path),
        MLFLOW_VAULT_TTL_SEC="0.2",
        MLFLOW_SECRETS_MAX_STALE_SEC="0",  # a refused token fails at once, not served stale
    )
    leak_check.begin()
    assert bearer_sent(sink) == "Bearer via-cli-token"
    # `vault login` again: the file holds a new token, the old one is gone.
    (tmp_path / ".vault-token").write_text(second + "\n")
    openbao.request("POST", "auth/token/revoke", json={"token": first})
    time.sleep(0.3)  # the cached secret has expired
    assert bearer_sent(sink) == "Bearer via-cli-token"
    # The new one expires too: the error names the file and `vault login`.
    openbao.request("POST", "auth/token/revoke", json={"token": second})
    time.sleep(0.3)
    sink.clear()
    error = failure(sink)
    assert error.step == "login"
    assert str(tmp_path / ".vault-token") in error.detail
    assert "expired" in error.detail
    assert "vault login" in error.fix
    leak_check.assert_clean([first, second, openbao.root_token], error)


def test_forced_method_overrides_the_order(
    openbao: OpenBaoServer, vault_env: VaultEnv, sink: RecordingServer, leak_check: LeakCheck
) -> None:
    path, policy = readable_secret(openbao, {"token": "forced-approle"})
    openbao.enable_approle()
    role_id, secret_id = openbao.create_approle(unique("role"), [policy])
    unusable = "s.ThisTokenDoesNotExistAnywhere0"
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN=unusable,  # first in the order, but not the method asked for
        VAULT_ROLE_ID=role_id,
        VAULT_SECRET_ID=secret_id,
        MLFLOW_VAULT_AUTH_METHOD="approle",
    )
    leak_check.begin()
    assert bearer_sent(sink) == "Bearer forced-approle"
    assert "method=approle" in login_messages(leak_check)[0]
    leak_check.assert_clean([secret_id, unusable], patterns=[VAULT_TOKEN_SHAPE])


# -- token lifecycle -----------------------------------------------------------------------------


class BasicUser:
    """An MLflow user whose basic credentials live in OpenBao, readable through a policy."""

    def __init__(self, openbao: OpenBaoServer, server: MlflowAuthServer) -> None:
        self.openbao, self.server = openbao, server
        self.username = unique("lifecycle")
        self.password = f"pw-{uuid.uuid4().hex}"
        server.create_user(self.username, self.password)
        self.path, self.policy = readable_secret(
            openbao, {"username": self.username, "password": self.password}
        )

    def rotate(self) -> str:
        self.password = f"pw-{uuid.uuid4().hex}"
        self.server.update_password(self.username, self.password)
        self.openbao.write_secret(
            "secret", self.path, {"username": self.username, "password": self.password}
        )
        return self.password


@pytest.fixture
def basic_user(openbao: OpenBaoServer, mlflow_server: MlflowAuthServer) -> BasicUser:
    return BasicUser(openbao, mlflow_server)


def approle_for(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    user: BasicUser,
    mlflow_server: MlflowAuthServer,
    ttl_sec: str = "0.3",
    **role: str,
) -> str:
    """Point the plugin (and MLflow) at ``user``'s secret through an AppRole login, the cache
    TTL ``ttl_sec``; returns the secret id."""
    openbao.enable_approle()
    role_id, secret_id = openbao.create_approle(unique("role"), [user.policy], **role)
    vault_env(
        f"secret/{user.path}",
        VAULT_TOKEN="",
        VAULT_ROLE_ID=role_id,
        VAULT_SECRET_ID=secret_id,
        MLFLOW_VAULT_AUTH_MODE="basic",
        MLFLOW_VAULT_TTL_SEC=ttl_sec,
        MLFLOW_TRACKING_AUTH="mlflow_secrets_auth",
        MLFLOW_TRACKING_URI=mlflow_server.url,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )
    return secret_id


def test_login_token_is_renewed_then_replaced_after_its_max_ttl(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    basic_user: BasicUser,
    mlflow_server: MlflowAuthServer,
    leak_check: LeakCheck,
) -> None:
    secret_id = approle_for(
        openbao, vault_env, basic_user, mlflow_server, token_ttl="3s", token_max_ttl="6s"
    )
    before = openbao.token_accessors()
    leak_check.begin()
    client = MlflowClient()
    experiment = client.create_experiment(unique("renewal"))
    (first,) = openbao.token_accessors() - before
    issued = openbao.lookup_accessor(first)
    renewed_seen = False
    logins = {first: issued["path"]}  # accessor -> login path, of every token seen
    started = time.monotonic()
    calls = 0
    while time.monotonic() - started < 8.0:  # longer than the 6 s max TTL
        client.log_metric(client.create_run(experiment).info.run_id, "step", calls)
        calls += 1
        for accessor in openbao.token_accessors() - before - logins.keys():
            logins[accessor] = openbao.lookup_accessor(accessor)["path"]
        if not renewed_seen:
            try:
                facts = openbao.lookup_accessor(first)
            except Exception:  # expired: it must have been renewed before, asserted below
                facts = {}
            # A renewal moves the expiry out and records when it happened.
            renewed_seen = bool(facts.get("last_renewal_time")) and (
                facts["expire_time"] > issued["expire_time"]
            )
        time.sleep(0.05)
    assert renewed_seen, "the login token was not renewed before it expired"
    assert len(logins) >= 2, "no new login after the max TTL"
    assert set(logins.values()) == {"auth/approle/login"}
    log = leak_check.log_text
    assert "Vault token renewed" in log
    assert len(login_messages(leak_check)) == len(logins)
    assert "read was refused" not in log  # replaced ahead of time, not after a 403
    leak_check.assert_clean([secret_id, basic_user.password], patterns=[VAULT_TOKEN_SHAPE])


def test_revoked_token_and_rotated_password_recover_with_a_new_login(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    basic_user: BasicUser,
    mlflow_server: MlflowAuthServer,
    leak_check: LeakCheck,
) -> None:
    # A long cache TTL: only the 401 makes the plugin fetch again.
    secret_id = approle_for(openbao, vault_env, basic_user, mlflow_server, ttl_sec="300")
    before = openbao.token_accessors()
    leak_check.begin()
    client = MlflowClient()
    client.search_experiments()
    old_password = basic_user.password
    for accessor in openbao.token_accessors() - before:
        openbao.revoke_accessor(accessor)  # the client's token is revoked mid-run
    new_password = basic_user.rotate()
    client.search_experiments()  # 401 → fetch → 403 → new login → new password → replay
    log = leak_check.log_text
    assert len(login_messages(leak_check)) == 2
    assert "read was refused" in log
    leak_check.assert_clean([secret_id, old_password, new_password], patterns=[VAULT_TOKEN_SHAPE])


def test_expired_user_token_names_vault_token(
    openbao: OpenBaoServer, vault_env: VaultEnv, sink: RecordingServer, leak_check: LeakCheck
) -> None:
    path, policy = readable_secret(openbao, {"token": "unreachable"})
    token = openbao.create_token([policy], ttl="1s")
    vault_env(f"secret/{path}", VAULT_TOKEN=token)
    time.sleep(1.5)
    leak_check.begin()
    error = failure(sink)
    assert (error.backend, error.step) == ("vault", "login")
    assert "VAULT_TOKEN" in error.detail
    assert "expired" in error.detail
    assert "VAULT_TOKEN" in error.fix
    leak_check.assert_clean([token], error)


def test_user_token_is_renewed_only_when_asked(
    openbao: OpenBaoServer, vault_env: VaultEnv, sink: RecordingServer, leak_check: LeakCheck
) -> None:
    path, policy = readable_secret(openbao, {"token": "kept-alive"})
    kept = openbao.create_token([policy], ttl="3s")
    leak_check.begin()
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN=kept,
        MLFLOW_VAULT_RENEW_TOKEN="true",
        MLFLOW_VAULT_TTL_SEC="0.2",
    )
    started = time.monotonic()
    while time.monotonic() - started < 4.5:  # past the 3 s it was created with
        assert bearer_sent(sink) == "Bearer kept-alive"
        time.sleep(0.05)
    assert "Vault token renewed" in leak_check.log_text

    from mlflow_secrets_auth import runtime

    runtime.reset()
    sink.clear()
    left = openbao.create_token([policy], ttl="2s")
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN=left,
        MLFLOW_VAULT_RENEW_TOKEN="",
        MLFLOW_SECRETS_MAX_STALE_SEC="0",
    )
    assert bearer_sent(sink) == "Bearer kept-alive"
    time.sleep(2.5)  # never renewed: it expires
    sink.clear()
    error = failure(sink)
    assert "VAULT_TOKEN" in error.detail
    leak_check.assert_clean([kept, left], error)


# -- Vault's transient answers ----------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 412, 429])
def test_transient_answer_is_retried_once(
    openbao: OpenBaoServer,
    vault_env: VaultEnv,
    sink: RecordingServer,
    leak_check: LeakCheck,
    status: int,
) -> None:
    path, _ = readable_secret(openbao, {"token": "after-a-retry"})
    read = f"/v1/secret/data/{path}"
    with CountingProxy(openbao.addr) as proxy:
        vault_env(f"secret/{path}", VAULT_ADDR=proxy.url)
        proxy.fail(read, status=status, times=1)
        leak_check.begin()
        assert bearer_sent(sink) == "Bearer after-a-retry"
        assert proxy.count("GET", read) == 2  # the failed answer and exactly one retry
    assert f"Vault answered HTTP {status} (transient); retry 1" in leak_check.log_text
    leak_check.assert_clean([openbao.root_token])


def test_transient_answers_stop_at_the_deadline_with_a_clear_error(
    openbao: OpenBaoServer, vault_env: VaultEnv, sink: RecordingServer
) -> None:
    path, _ = readable_secret(openbao, {"token": "never"})
    read = f"/v1/secret/data/{path}"
    with CountingProxy(openbao.addr) as proxy:
        vault_env(f"secret/{path}", VAULT_ADDR=proxy.url, MLFLOW_SECRETS_TIMEOUT_SEC="1")
        proxy.fail(read, status=503)  # until healed
        error = failure(sink)
        attempts = proxy.count("GET", read)
    assert error.step == "connect"
    assert 2 <= attempts <= 8  # backed off (0.1, 0.2, 0.4 s ...), not hammered


# -- a KV lease as the secret's expiry -------------------------------------------------------------


def test_kv_v1_lease_shorter_than_the_ttl_becomes_the_expiry(
    openbao: OpenBaoServer, vault_env: VaultEnv
) -> None:
    openbao.enable_kv("kv1-lease", 1)
    short, long = unique("short"), unique("long")
    openbao.write_secret("kv1-lease", short, {"token": "t", "ttl": "2s"}, version=1)
    openbao.write_secret("kv1-lease", long, {"token": "t", "ttl": "1h"}, version=1)
    env = {
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": openbao.root_token,
        "MLFLOW_VAULT_TTL_SEC": "60",
    }
    general = load_general({})
    before = time.time()
    fetched = VaultStore(
        load_store_settings(
            "vault", {**env, "MLFLOW_VAULT_SECRET_PATH": f"kv1-lease/{short}"}, general
        )
    ).fetch()
    assert fetched.expires_at is not None
    assert before + 1 <= fetched.expires_at <= time.time() + 2
    longer = VaultStore(
        load_store_settings(
            "vault", {**env, "MLFLOW_VAULT_SECRET_PATH": f"kv1-lease/{long}"}, general
        )
    ).fetch()
    assert longer.expires_at is None  # the cache TTL is the shorter lifetime
