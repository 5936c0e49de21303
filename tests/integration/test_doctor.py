"""`mlflow-secrets-auth doctor` against a real OpenBao server and a real authenticated MLflow
server: every check passes for a correct configuration, and each way it goes wrong is reported
at the right step with the right fix — and without ever showing a secret."""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from mlflow_secrets_auth.cli import main

from support.doctor_order import CHECK_ORDER as ALL_IDS
from support.mlflow_server import MlflowAuthServer
from support.openbao import OpenBaoServer
from support.ports import free_port
from support.recording_server import RecordingServer

pytestmark = pytest.mark.integration

API_PATH = "/api/2.0/mlflow/experiments/search"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


Configure = Callable[..., None]


@pytest.fixture
def configure(vault_env: Configure) -> Configure:
    """A complete Vault configuration, activated for MLflow; keyword arguments override it."""

    def apply(secret_path: str, **extra: str) -> None:
        defaults = {
            "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
            "MLFLOW_SECRETS_ALLOWED_HOSTS": "",
        }
        vault_env(secret_path, **{**defaults, **extra})

    return apply


@pytest.fixture
def stored(openbao: OpenBaoServer) -> Callable[[dict[str, Any]], str]:
    """Write a secret at a fresh path and return its MLFLOW_VAULT_SECRET_PATH."""

    def write(data: dict[str, Any]) -> str:
        path = unique("doctor")
        openbao.write_secret("secret", path, data)
        return f"secret/{path}"

    return write


def doctor(*args: str) -> tuple[int, dict[str, dict[str, str]], Result]:
    result = CliRunner().invoke(main, ["doctor", "--json", *args], catch_exceptions=False)
    document = json.loads(result.stdout)
    checks = {c["id"]: c for c in document["checks"]}
    assert list(checks)[: len(ALL_IDS)] == ALL_IDS
    assert document["ok"] is (result.exit_code == 0)
    return result.exit_code, checks, result


def statuses(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {check_id: check["status"] for check_id, check in checks.items()}


def mlflow_user(server: MlflowAuthServer) -> tuple[str, str]:
    username = unique("doctor")
    password = f"pw-{uuid.uuid4().hex}"
    server.create_user(username, password)
    return username, password


# -- everything right ---------------------------------------------------------------------------


@pytest.mark.smoke
def test_every_check_passes_with_a_real_dry_run(
    configure: Configure, stored: Callable[[dict[str, Any]], str], mlflow_server: MlflowAuthServer
) -> None:
    username, password = mlflow_user(mlflow_server)
    path = stored({"username": username, "password": password})
    configure(path, MLFLOW_VAULT_AUTH_MODE="basic", MLFLOW_TRACKING_URI=mlflow_server.url)

    code, checks, _ = doctor("--dry-run", mlflow_server.url)
    assert code == 0
    assert list(checks) == [*ALL_IDS, "dry_run"]
    assert set(statuses(checks).values()) == {"passed"}, checks
    assert checks["configuration"]["detail"].startswith("vault chosen: Vault at http://127.0.0.1")
    assert f"parsed as basic credentials for user {username}" in checks["secret_format"]["detail"]
    assert checks["auth_header"]["detail"].startswith("Authorization: Basic <")
    assert "HTTP 200 from" in checks["dry_run"]["detail"]

    text = CliRunner().invoke(main, ["doctor", "--dry-run", mlflow_server.url])
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert all(line.startswith("✓ ") for line in lines[1:-1]), text.stdout
    assert lines[-1] == "OK: 11 passed, 0 failed, 0 warning(s), 0 skipped"
    assert password not in text.output


HEAVY_PROBE = """
import json, sys
from mlflow_secrets_auth.cli import main
code = main.main(["doctor"], standalone_mode=False)
heavy = ("mlflow", "hvac", "boto3", "botocore", "azure", "google")
loaded = sorted({m.split(".")[0] for m in sys.modules} & set(heavy))
print(json.dumps({"exit": code, "loaded": loaded}), file=sys.stderr)
"""


def doctor_imports() -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-c", HEAVY_PROBE], capture_output=True, text=True, timeout=60
    )
    return json.loads(done.stderr.strip().splitlines()[-1]), done.stdout


def test_a_healthy_doctor_loads_only_what_the_enabled_backend_needs(
    configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    """Speed comes from not loading: no other backend's SDK, and no MLflow (only its entry
    point's metadata is read). bench/cli_time.py prints the wall time."""
    configure(stored({"token": "tok-light-1234"}))
    report, stdout = doctor_imports()
    assert report == {"exit": 0, "loaded": ["hvac"]}, stdout
    assert "OK: 10 passed" in stdout


def test_a_healthy_doctor_for_aws_loads_neither_hvac_nor_mlflow(
    aws_secret: Callable[[str | bytes], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    aws_secret(json.dumps({"token": "aws-light-1234"}))
    report, stdout = doctor_imports()
    assert report == {"exit": 0, "loaded": ["boto3", "botocore"]}, stdout


@pytest.mark.smoke
@pytest.mark.parametrize("command", ["info", "doctor"])
def test_a_healthy_cli_piped_into_head_ends_quietly(
    configure: Configure, stored: Callable[[dict[str, Any]], str], command: str
) -> None:
    configure(stored({"token": "tok-pipe-1234"}))
    script = Path(sys.executable).with_name("mlflow-secrets-auth")
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f'"{script}" {command} | head -1'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == ""
    assert done.returncode == 0  # the command's own verdict, through pipefail
    assert done.stdout.startswith("mlflow-secrets-auth ") and done.stdout.count("\n") == 1


# -- the credential chain, step by step ---------------------------------------------------------


def test_wrong_vault_port_fails_at_connect_as_refused(
    configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    configure(stored({"token": "t-1234"}), VAULT_ADDR=f"http://127.0.0.1:{free_port()}")
    code, checks, _ = doctor()
    assert code == 1
    reachable = checks["backend_reachable"]
    assert reachable["status"] == "failed"
    assert "refused" in reachable["detail"]
    assert "VAULT_ADDR" in reachable["fix"]
    for later in ("login", "secret_read", "secret_format", "auth_header"):
        assert checks[later]["status"] == "skipped"
        assert checks[later]["detail"].startswith("not run because Vault at http://127.0.0.1")


# -- doctor names the real cause --------------------------------------------------------------


def assert_no_secret(result: Result, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout, "a secret value leaked into stdout"
        assert secret not in result.stderr, "a secret value leaked into stderr"


def revoked_token(openbao: OpenBaoServer) -> str:
    token = openbao.create_token(["default"])
    openbao.request("POST", "auth/token/revoke", json={"token": token})
    return token


@pytest.mark.parametrize("kind", ["made up", "revoked"])
def test_an_invalid_or_expired_token_fails_at_login(
    openbao: OpenBaoServer, configure: Configure, stored: Callable[[dict[str, Any]], str], kind: str
) -> None:
    token = (
        f"s.not-a-real-token-{uuid.uuid4().hex}" if kind == "made up" else revoked_token(openbao)
    )
    configure(stored({"token": "t-1234"}), VAULT_TOKEN=token)
    code, checks, result = doctor()
    assert code == 1
    assert statuses(checks)["backend_reachable"] == "passed"
    login = checks["login"]
    assert login["status"] == "failed"
    assert login["detail"].startswith("VAULT_TOKEN is invalid or expired")
    assert "lookup-self" in login["detail"]
    assert "set VAULT_TOKEN to a valid token" in login["fix"]
    assert checks["secret_read"]["status"] == "skipped"
    assert checks["secret_read"]["detail"] == "not run because the login failed"
    assert_no_secret(result, token, openbao.root_token)


def test_a_valid_token_without_permission_fails_at_read_with_vaults_words_summarised(
    openbao: OpenBaoServer, configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    policy = unique("elsewhere")
    openbao.create_policy(policy, 'path "secret/data/elsewhere/*" { capabilities = ["read"] }')
    token = openbao.create_token([policy])
    path = stored({"token": "t-1234"})
    configure(path, VAULT_TOKEN=token)
    code, checks, result = doctor()
    assert code == 1
    login = checks["login"]
    assert login["status"] == "passed"
    assert login["detail"].startswith("VAULT_TOKEN is valid (policies default, ")
    read = checks["secret_read"]
    assert read["status"] == "failed"
    # Vault said "1 error occurred:\n\t* permission denied\n\n": summarised, not pasted.
    assert read["detail"] == f"read failed: permission denied reading {path} (KV v2)"
    assert "VAULT_TOKEN" in read["fix"]
    assert f"the token's policies: default, {policy}" in read["fix"]
    text = CliRunner().invoke(main, ["doctor"])
    assert "error occurred" not in text.output and "\t" not in text.output
    assert_no_secret(result, token, "t-1234")


def test_a_valid_token_that_may_not_look_itself_up_is_not_called_expired(
    openbao: OpenBaoServer, configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    """Without the default policy a token cannot call lookup-self: Vault's mount listing, which
    answers every valid token, tells it from an expired one."""
    policy = unique("bare")
    openbao.create_policy(policy, 'path "secret/data/elsewhere/*" { capabilities = ["read"] }')
    answer = openbao.request(
        "POST", "auth/token/create", json={"policies": [policy], "no_default_policy": True}
    )
    token = answer["auth"]["client_token"]
    path = stored({"token": "t-1234"})
    configure(path, VAULT_TOKEN=token)
    code, checks, result = doctor()
    assert code == 1
    login = checks["login"]
    assert login["status"] == "passed", login
    assert "its policies do not allow looking itself up" in login["detail"]
    read = checks["secret_read"]
    assert read["status"] == "failed"
    assert f"permission denied reading {path}" in read["detail"]
    assert "expired" not in read["detail"]
    assert_no_secret(result, token)


def test_a_wrong_mount_says_it_does_not_exist_and_lists_the_mounts_the_token_sees(
    openbao: OpenBaoServer, configure: Configure
) -> None:
    mount = unique("kv1-seen")
    openbao.enable_kv(mount, version=1)
    policy = unique("kv1-only")
    openbao.create_policy(policy, f'path "{mount}/*" {{ capabilities = ["read"] }}')
    token = openbao.create_token([policy])
    configure("nosuchmount/mlflow/auth", VAULT_TOKEN=token)
    code, checks, result = doctor()
    assert code == 1
    assert statuses(checks)["login"] == "passed"
    read = checks["secret_read"]
    assert read["status"] == "failed"
    assert "the mount nosuchmount/ in MLFLOW_VAULT_SECRET_PATH does not exist" in read["detail"]
    assert read["detail"].endswith(f"KV mounts this token can see: {mount}/ (KV v1)")
    assert "secret/" not in read["detail"]  # this token cannot see the default mount
    assert "MLFLOW_VAULT_SECRET_PATH" in read["fix"]
    assert checks["secret_format"]["detail"] == "not run because the secret could not be read"
    assert_no_secret(result, token)

    configure("nosuchmount/mlflow/auth")  # the root token sees every mount
    _, checks, _ = doctor()
    detail = checks["secret_read"]["detail"]
    assert "secret/ (KV v2)" in detail and f"{mount}/ (KV v1)" in detail
    # The guess the plugin falls back to is never shown as if it were known.
    assert "nosuchmount/mlflow/auth (KV" not in detail


def test_bad_approle_secret_fails_at_login(
    openbao: OpenBaoServer, configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    path = stored({"token": "t-1234"})
    policy = unique("read")
    data_path = path.replace("secret/", "secret/data/", 1)
    openbao.create_policy(policy, f'path "{data_path}" {{ capabilities = ["read"] }}')
    openbao.enable_approle()
    role_id, _ = openbao.create_approle(unique("role"), [policy])
    configure(path, VAULT_TOKEN="", VAULT_ROLE_ID=role_id, VAULT_SECRET_ID=str(uuid.uuid4()))
    code, checks, _ = doctor()
    assert code == 1
    assert statuses(checks)["backend_reachable"] == "passed"
    login = checks["login"]
    assert login["status"] == "failed"
    assert "approle login" in login["detail"]
    assert "VAULT_SECRET_ID" in login["fix"]
    assert checks["secret_read"]["status"] == "skipped"
    assert checks["secret_read"]["detail"] == "not run because the login failed"


def test_missing_secret_path_fails_at_read_as_not_found(configure: Configure) -> None:
    configure(f"secret/{unique('nothing-here')}")
    code, checks, _ = doctor()
    assert code == 1
    read = checks["secret_read"]
    assert read["status"] == "failed"
    assert "not found" in read["detail"].lower()
    assert "MLFLOW_VAULT_SECRET_PATH" in read["fix"]


@pytest.mark.parametrize(
    ("data", "mode", "detail", "fix"),
    [
        ({"user": "alice"}, "bearer", "keys found: user", '{"token": "..."}'),
        (
            {"username": "alice", "password": "pw-1234"},
            "bearer",
            "holds a username and password, which fits basic mode, but the auth mode is bearer",
            "set MLFLOW_VAULT_AUTH_MODE=basic, or unset it (auto, the default, uses basic",
        ),
        (
            {"token": "plain-token-1234"},
            "basic",
            "basic mode needs the token in the form user:pass, but it has no colon: the secret "
            "fits bearer mode",
            "set MLFLOW_VAULT_AUTH_MODE=bearer, or unset it (auto, the default, uses bearer",
        ),
    ],
)
def test_wrong_shape_or_mode_fails_at_format(
    configure: Configure,
    stored: Callable[[dict[str, Any]], str],
    data: dict[str, Any],
    mode: str,
    detail: str,
    fix: str,
) -> None:
    configure(stored(data), MLFLOW_VAULT_AUTH_MODE=mode)
    code, checks, result = doctor()
    assert code == 1
    assert statuses(checks)["secret_read"] == "passed"
    check = checks["secret_format"]
    assert check["status"] == "failed"
    assert detail in check["detail"]
    assert f"configured {mode} mode (MLFLOW_VAULT_AUTH_MODE)" in check["detail"]
    assert fix in check["fix"]
    assert checks["auth_header"]["status"] == "skipped"
    for value in data.values():
        assert value not in result.output or value == "alice"


def test_trailing_newline_is_a_warning_and_still_exit_0(
    configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    configure(stored({"token": "tok-with-newline-1234\n"}))
    code, checks, result = doctor()
    assert code == 0
    check = checks["secret_format"]
    assert check["status"] == "warning"
    assert "the token ends with a line break" in check["detail"]
    assert "without surrounding white space" in check["fix"]
    assert checks["auth_header"]["status"] == "passed"
    assert checks["auth_header"]["detail"].startswith("Authorization: Bearer <21 characters>")
    assert "tok-with-newline" not in result.output


# -- MLflow activation --------------------------------------------------------------------------


def test_unset_tracking_auth_fails_activation(
    configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    configure(stored({"token": "t-1234"}), MLFLOW_TRACKING_AUTH="")
    code, checks, _ = doctor()
    assert code == 1
    failed = [check_id for check_id, status in statuses(checks).items() if status == "failed"]
    assert failed == ["tracking_auth"]
    assert checks["tracking_auth"]["fix"] == "export MLFLOW_TRACKING_AUTH=mlflow_secrets_auth"


def test_sigv4_bypasses_the_plugin(
    configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    configure(stored({"token": "t-1234"}), MLFLOW_TRACKING_AWS_SIGV4="true")
    code, checks, _ = doctor()
    assert code == 1
    assert checks["overrides"]["status"] == "failed"
    assert "MLFLOW_TRACKING_AWS_SIGV4=true" in checks["overrides"]["detail"]
    assert "unset MLFLOW_TRACKING_AWS_SIGV4" in checks["overrides"]["fix"]


# -- the dry run --------------------------------------------------------------------------------


def test_dry_run_with_a_wrong_password_is_rejected(
    configure: Configure, stored: Callable[[dict[str, Any]], str], mlflow_server: MlflowAuthServer
) -> None:
    username, _ = mlflow_user(mlflow_server)
    path = stored({"username": username, "password": "not-the-password-1234"})
    configure(path, MLFLOW_VAULT_AUTH_MODE="basic", MLFLOW_TRACKING_URI=mlflow_server.url)
    code, checks, result = doctor("--dry-run", mlflow_server.url)
    assert code == 1
    dry_run = checks["dry_run"]
    assert dry_run["status"] == "failed"
    assert "HTTP 401" in dry_run["detail"]
    assert (
        "the server rejected the credential: check it is current and meant for 127.0.0.1"
        in dry_run["detail"]
    )
    assert path in dry_run["fix"]
    assert "not-the-password" not in result.output


@pytest.fixture
def sink(recording_server: Callable[[], RecordingServer]) -> RecordingServer:
    return recording_server()


def test_dry_run_answered_by_an_html_page_is_a_login_page(
    configure: Configure, stored: Callable[[dict[str, Any]], str], sink: RecordingServer
) -> None:
    sink.set_default_response(
        200, "<html><form>Sign in</form></html>", {"Content-Type": "text/html"}
    )
    configure(stored({"token": "tok-html-1234"}), MLFLOW_TRACKING_URI=sink.url)
    code, checks, _ = doctor("--dry-run", sink.url)
    assert code == 1
    assert checks["dry_run"]["status"] == "failed"
    assert (
        "an SSO/proxy login page answered instead of the MLflow API" in checks["dry_run"]["detail"]
    )
    (request,) = sink.requests
    assert request.path == API_PATH and request.query == "max_results=1"
    assert request.header("authorization") == "Bearer tok-html-1234"


def test_dry_run_redirected_to_a_login_page(
    configure: Configure, stored: Callable[[dict[str, Any]], str], sink: RecordingServer
) -> None:
    sink.redirect(API_PATH, "/oauth2/sign_in?rd=%2Fapi")
    sink.set_response("/oauth2/sign_in", 200, {"note": "a login endpoint answering JSON"})
    configure(stored({"token": "tok-redirect-1234"}), MLFLOW_TRACKING_URI=sink.url)
    code, checks, _ = doctor("--dry-run", sink.url)
    assert code == 1
    detail = checks["dry_run"]["detail"]
    assert "an SSO/proxy login page answered instead of the MLflow API" in detail
    assert "/oauth2/sign_in" in detail


def test_dry_run_redirected_to_another_host_says_the_credential_stayed_behind(
    configure: Configure, stored: Callable[[dict[str, Any]], str], sink: RecordingServer
) -> None:
    sink.redirect(API_PATH, sink.localhost_url + "/elsewhere")
    configure(stored({"token": "tok-moved-1234"}), MLFLOW_TRACKING_URI=sink.url)
    code, checks, _ = doctor("--dry-run", sink.url)
    assert code == 1
    detail = checks["dry_run"]["detail"]
    assert f"redirected to another host (http://localhost:{sink.port}/elsewhere)" in detail
    first, second = sink.requests
    assert first.header("authorization") == "Bearer tok-moved-1234"
    assert second.path == "/elsewhere" and not second.has_header("authorization")


def test_dry_run_redirected_to_another_port_fails_although_that_server_said_200(
    configure: Configure,
    stored: Callable[[dict[str, Any]], str],
    recording_server: Callable[[], RecordingServer],
) -> None:
    front, other = recording_server(), recording_server()
    front.redirect(API_PATH, other.url + API_PATH)
    other.set_response(API_PATH, 200, {"experiments": []})
    configure(stored({"token": "tok-port-1234"}), MLFLOW_TRACKING_URI=front.url)
    code, checks, result = doctor("--dry-run", front.url)
    assert code == 1
    dry_run = checks["dry_run"]
    assert dry_run["status"] == "failed"
    assert f"redirected to another port ({other.url}{API_PATH})" in dry_run["detail"]
    assert "(HTTP 200) never received it" in dry_run["detail"]
    assert f"use {other.url} as the --dry-run URL and MLFLOW_TRACKING_URI" in dry_run["fix"]
    assert front.requests[0].header("authorization") == "Bearer tok-port-1234"
    (arrived,) = other.requests
    assert not arrived.has_header("authorization")
    assert_no_secret(result, "tok-port-1234")


def test_dry_run_redirected_to_another_scheme_names_the_redirect_not_only_the_tls_error(
    configure: Configure, stored: Callable[[dict[str, Any]], str], sink: RecordingServer
) -> None:
    https = f"https://127.0.0.1:{sink.port}"  # the same host and port, another scheme
    sink.redirect(API_PATH, https + API_PATH)
    configure(stored({"token": "tok-scheme-1234"}), MLFLOW_TRACKING_URI=sink.url)
    code, checks, result = doctor("--dry-run", sink.url)
    assert code == 1
    dry_run = checks["dry_run"]
    assert dry_run["status"] == "failed"
    assert f"redirected to another scheme ({https}{API_PATH})" in dry_run["detail"]
    assert "arrived there without one, and failed" in dry_run["detail"]
    assert "MLFLOW_TRACKING_URI" in dry_run["fix"]
    assert_no_secret(result, "tok-scheme-1234")


def test_dry_run_without_a_url_goes_to_the_tracking_uri(
    configure: Configure, stored: Callable[[dict[str, Any]], str], sink: RecordingServer
) -> None:
    sink.set_response(API_PATH, 200, {"experiments": []})
    configure(stored({"token": "tok-default-url-1234"}), MLFLOW_TRACKING_URI=sink.url)
    result = CliRunner().invoke(main, ["doctor", "--dry-run", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["dry_run_url"] == sink.url
    assert document["checks"][-1]["id"] == "dry_run"
    assert document["checks"][-1]["status"] == "passed"
    (request,) = sink.requests
    assert request.path == API_PATH
    assert request.header("authorization") == "Bearer tok-default-url-1234"


def test_dry_run_without_an_mlflow_api_is_404(
    configure: Configure, stored: Callable[[dict[str, Any]], str], sink: RecordingServer
) -> None:
    sink.set_default_response(404, {"error": "no such route"})
    configure(stored({"token": "tok-404-1234"}), MLFLOW_TRACKING_URI=sink.url)
    code, checks, _ = doctor("--dry-run", sink.url + "/wrong-prefix/")
    assert code == 1
    assert "no MLflow API at this URL" in checks["dry_run"]["detail"]
    assert sink.requests[0].path == "/wrong-prefix" + API_PATH


def test_dry_run_to_a_closed_port_is_refused(
    configure: Configure, stored: Callable[[dict[str, Any]], str]
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    configure(stored({"token": "tok-closed-1234"}), MLFLOW_TRACKING_URI=url)
    code, checks, _ = doctor("--dry-run", url)
    assert code == 1
    dry_run = checks["dry_run"]
    assert dry_run["status"] == "failed"
    assert "refused" in dry_run["detail"]
    assert "listening" in dry_run["fix"]


def test_dry_run_to_a_host_outside_the_allowlist_sends_nothing(
    configure: Configure, stored: Callable[[dict[str, Any]], str], sink: RecordingServer
) -> None:
    configure(stored({"token": "tok-elsewhere-1234"}), MLFLOW_TRACKING_URI=sink.url)
    code, checks, _ = doctor("--dry-run", sink.localhost_url)  # another host name
    assert code == 1
    dry_run = checks["dry_run"]
    assert dry_run["status"] == "failed"
    assert "Host not allowed: localhost" in dry_run["detail"]
    assert "MLFLOW_SECRETS_ALLOWED_HOSTS" in dry_run["detail"]
    assert "add localhost to MLFLOW_SECRETS_ALLOWED_HOSTS" in dry_run["fix"]
    assert sink.requests == []


# -- no secret anywhere, at DEBUG ---------------------------------------------------------------

NASTY = "p@ss:w/rd%-"


class Secrets:
    """Every form in which a secret could show up."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def add(self, value: str) -> str:
        self.values.extend({value, value.strip()})
        return value

    def basic(self, username: str, password: str) -> None:
        self.values.append(base64.b64encode(f"{username}:{password.strip()}".encode()).decode())

    def assert_absent(self, text: str, where: str) -> None:
        for value in self.values:
            assert value not in text, f"a secret value leaked into {where}"


def run_console_script(*args: str) -> subprocess.CompletedProcess[str]:
    """The installed `mlflow-secrets-auth`, as a user runs it, with this test's environment."""
    script = Path(sys.executable).with_name("mlflow-secrets-auth")
    env = {**os.environ, "MLFLOW_SECRETS_LOG_LEVEL": "DEBUG"}  # MLFLOW_SECRETS_CACHE_DIR set
    return subprocess.run(
        [str(script), *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_no_secret_in_any_output_at_debug(
    openbao: OpenBaoServer,
    configure: Configure,
    stored: Callable[[dict[str, Any]], str],
    mlflow_server: MlflowAuthServer,
    sink: RecordingServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_CACHE_DIR", str(tmp_path / "marker"))
    secrets = Secrets()
    secrets.add(openbao.root_token)
    username, _ = mlflow_user(mlflow_server)
    password = secrets.add(f"{NASTY}{uuid.uuid4().hex}\n")
    mlflow_server.update_password(username, password.strip())
    secrets.basic(username, password)
    wrong = secrets.add(f"{NASTY}wrong-{uuid.uuid4().hex}\n")
    secrets.basic(username, wrong)
    token = secrets.add(f"tok{NASTY}{uuid.uuid4().hex}\n")

    good = stored({"username": username, "password": password})
    rejected = stored({"username": username, "password": wrong})
    bearer = stored({"token": token})
    basic = {"MLFLOW_VAULT_AUTH_MODE": "basic", "MLFLOW_TRACKING_URI": mlflow_server.url}
    auto_mode = {"MLFLOW_VAULT_AUTH_MODE": "", "MLFLOW_TRACKING_URI": mlflow_server.url}
    bearer_mode = {"MLFLOW_VAULT_AUTH_MODE": "bearer", "MLFLOW_TRACKING_URI": mlflow_server.url}
    dry_run = ["--dry-run", mlflow_server.url]
    runs = [
        # (secret path, settings, arguments, expected exit code)
        (good, basic, ["doctor", *dry_run], 0),
        (good, auto_mode, ["doctor", *dry_run], 0),  # auto: username/password → basic
        (good, basic, ["doctor", "--json"], 0),
        (good, basic, ["info"], 0),
        (good, basic, ["info", "--json"], 0),
        (good, bearer_mode, ["doctor", "--json", *dry_run], 1),  # mode mismatch
        (rejected, basic, ["doctor", *dry_run], 1),
        (rejected, basic, ["doctor", "--json", *dry_run], 1),
        (
            bearer,
            {**auto_mode, "MLFLOW_TRACKING_URI": sink.url},
            ["doctor", "--dry-run", sink.url],
            0,
        ),
    ]
    for path, settings, args, expected in runs:
        configure(path, **settings)
        done = run_console_script(*args)
        where = f"`{' '.join(args)}` ({path})"
        assert done.returncode == expected, f"{where}: {done.stdout}\n{done.stderr}"
        assert "DEBUG: " in done.stderr, "nothing logged at DEBUG: the check would prove nothing"
        assert "Traceback" not in done.stderr
        secrets.assert_absent(done.stdout, f"stdout of {where}")
        secrets.assert_absent(done.stderr, f"stderr of {where}")
        if "--json" in args:
            json.loads(done.stdout)
    # The bearer token really was used, so its absence above means something.
    assert sink.requests[-1].header("authorization") == f"Bearer {token.strip()}"


def test_no_secret_in_third_party_debug_logs_either(
    openbao: OpenBaoServer,
    configure: Configure,
    stored: Callable[[dict[str, Any]], str],
    mlflow_server: MlflowAuthServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """In process, every logger (urllib3, hvac, ...) at DEBUG, on the 401 re-fetch path."""
    secrets = Secrets()
    secrets.add(openbao.root_token)
    username, _ = mlflow_user(mlflow_server)
    wrong = secrets.add(f"{NASTY}{uuid.uuid4().hex}\n")
    secrets.basic(username, wrong)
    configure(
        stored({"username": username, "password": wrong}),
        MLFLOW_VAULT_AUTH_MODE="basic",
        MLFLOW_TRACKING_URI=mlflow_server.url,
        MLFLOW_SECRETS_LOG_LEVEL="DEBUG",
    )
    caplog.set_level(logging.DEBUG)
    code, checks, result = doctor("--dry-run", mlflow_server.url)
    assert code == 1
    assert "rejected" in checks["dry_run"]["detail"]
    messages = [record.getMessage() for record in caplog.records]
    assert any("rejected a freshly fetched credential" in m for m in messages)  # re-fetched
    assert any(record.name.startswith("urllib3") for record in caplog.records)
    secrets.assert_absent("\n".join(messages), "a log record")
    secrets.assert_absent(result.stdout, "stdout")
    secrets.assert_absent(result.stderr, "stderr")


# -- the other backends: the same steps, through their SDKs -------------------------------------


def chain(checks: dict[str, dict[str, str]]) -> list[str]:
    return [checks[i]["status"] for i in ALL_IDS[1:6]]


def test_aws_secrets_manager_steps(
    aws_secret: Callable[[str | bytes], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    aws_secret(json.dumps({"token": "aws-token-1234"}))
    code, checks, result = doctor()
    assert code == 0, checks
    assert chain(checks) == ["passed"] * 5
    assert checks["configuration"]["detail"].startswith("aws-secrets-manager chosen")
    assert "aws-token-1234" not in result.output

    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", unique("mlflow/missing"))
    code, checks, _ = doctor()
    assert code == 1
    assert chain(checks) == ["passed", "passed", "failed", "skipped", "skipped"]
    assert "MLFLOW_AWS_SECRET_NAME" in checks["secret_read"]["fix"]


def test_azure_key_vault_steps(azure_keyvault: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    monkeypatch.setenv("MLFLOW_AZURE_SECRET_NAME", "mlflow-doctor")
    azure_keyvault.set_secret("mlflow-doctor", "azure-token-1234")
    code, checks, result = doctor()
    assert code == 0, checks
    assert chain(checks) == ["passed"] * 5
    assert checks["configuration"]["detail"].startswith("azure-key-vault chosen")
    assert "azure-token-1234" not in result.output

    monkeypatch.setenv("MLFLOW_AZURE_SECRET_NAME", "not-there")
    code, checks, _ = doctor()
    assert code == 1
    assert chain(checks) == ["passed", "passed", "failed", "skipped", "skipped"]
