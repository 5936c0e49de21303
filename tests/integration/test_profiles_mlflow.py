"""Several servers, several credentials, one process (SPEC §11), and where credentials may go
(SPEC §5): real MLflow servers with authentication, real OpenBao, moto, loopback recorders.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

import mlflow_secrets_auth
from mlflow_secrets_auth import runtime
from mlflow_secrets_auth.errors import ConfigurationError, HostNotAllowedError

from support.counting_proxy import CountingProxy, digest
from support.leaks import LeakCheck
from support.mlflow_server import MlflowAuthServer
from support.moto_server import MotoServer
from support.openbao import OpenBaoServer
from support.ports import LOOPBACK
from support.recording_server import RecordingServer


def basic(username: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@pytest.fixture(scope="module")
def second_mlflow_server() -> Iterator[MlflowAuthServer]:
    """Server B, with users of its own: started only for the tests that need two servers."""
    server = MlflowAuthServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mlflow-secrets-auth.toml"
    monkeypatch.setenv("MLFLOW_SECRETS_CONFIG", str(path))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return path


def write_secret_file(directory: Path, name: str, value: str) -> Path:
    path = directory / name
    path.write_text(value)
    path.chmod(0o600)
    return path


def sent(server: RecordingServer, path: str = "/api/2.0/mlflow/experiments/search") -> str | None:
    """The Authorization a plugin-authenticated GET to ``server`` carried (None: none)."""
    server.clear()
    requests.get(f"{server.url}{path}", auth=mlflow_secrets_auth.get_auth(), timeout=10)
    (request,) = server.requests_to(path)
    return request.header("Authorization")


# -- two servers, two stores --------------------------------------------------------------------


def test_two_servers_two_stores_each_server_gets_only_its_own_credential(
    mlflow_server: MlflowAuthServer,
    second_mlflow_server: MlflowAuthServer,
    openbao: OpenBaoServer,
    moto_server: MotoServer,
    config_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    leak_check: LeakCheck,
) -> None:
    import mlflow
    from mlflow import MlflowClient

    label = uuid.uuid4().hex[:8]
    user_a, pass_a = f"a-{label}", f"pa-{uuid.uuid4().hex}"
    user_b, pass_b = f"b-{label}", f"pb-{uuid.uuid4().hex}"
    mlflow_server.create_user(user_a, pass_a)
    second_mlflow_server.create_user(user_b, pass_b)
    openbao.write_secret("secret", f"profiles/{label}", {"username": user_a, "password": pass_a})
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    aws_secret = moto_server.create_secret(json.dumps({"username": user_b, "password": pass_b}))
    monkeypatch.setenv("VAULT_TOKEN", openbao.root_token)  # the store's login: environment
    monkeypatch.delenv("MLFLOW_SECRETS_AUTH_ENABLE", raising=False)  # profiles only
    region = moto_server.env().get("AWS_REGION", "us-east-1")

    with (
        CountingProxy(mlflow_server.url) as proxy_a,
        CountingProxy(second_mlflow_server.url) as proxy_b,
    ):
        host_a = proxy_a.url.split("://", 1)[1]
        host_b = proxy_b.url.split("://", 1)[1]
        config_file.write_text(
            f"""
[defaults]
timeout_sec = 5
auth_mode = "basic"

[profiles.a]
hosts = ["{host_a}"]
backend = "vault"
addr = "{openbao.addr}"
secret_path = "secret/profiles/{label}"

[profiles.b]
hosts = ["{host_b}"]
backend = "aws-secrets-manager"
secret_name = "{aws_secret.name}"
region = "{region}"
"""
        )
        monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy_a.url)
        monkeypatch.setenv("MLFLOW_REGISTRY_URI", proxy_b.url)
        monkeypatch.setenv("MLFLOW_SECRETS_LOG_LEVEL", "DEBUG")
        leak_check.begin()

        experiment_id = mlflow.create_experiment(f"profiles-{label}")
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.log_metric("score", 0.5)
            mlflow.log_text("two servers\n", "notes/profiles.txt")
        model = f"profiles-model-{label}"
        client = MlflowClient()
        client.create_registered_model(model)
        # Server B holds no runs of server A: the version points at a model stored elsewhere.
        version = client.create_model_version(model, f"s3://models-{label}/model", run_id=None)

        assert version.version == "1"
        data = mlflow_server.admin_request(
            "GET", f"/api/2.0/mlflow/runs/get?run_id={run.info.run_id}"
        )
        assert data["run"]["data"]["metrics"][0]["value"] == 0.5
        assert any(
            p.read_text() == "two servers\n"
            for p in mlflow_server.artifacts_dir.rglob("profiles.txt")
        )
        registered = second_mlflow_server.admin_request(
            "GET", f"/api/2.0/mlflow/registered-models/get?name={model}"
        )
        assert registered["registered_model"]["name"] == model
        # Each server received its own credential, and only that one.
        assert proxy_a.authorizations == {digest(basic(user_a, pass_a))}
        assert proxy_b.authorizations == {digest(basic(user_b, pass_b))}
    leak_check.assert_clean([pass_a, pass_b, basic(user_a, pass_a), basic(user_b, pass_b)])


# -- selection rules, no match, env beside the file -----------------------------------------------


@pytest.fixture
def three_files(tmp_path: Path) -> dict[str, Path]:
    return {
        name: write_secret_file(tmp_path, name, f"token-{name}-{uuid.uuid4().hex}")
        for name in ("exact", "pattern", "later", "envtok")
    }


def profile(name: str, hosts: list[str], secret: Path) -> str:
    return (
        f'[profiles.{name}]\nhosts = {json.dumps(hosts)}\nbackend = "file"\n'
        f'secret_path = "{secret}"\nauth_mode = "bearer"\n'
    )


def test_an_exact_host_beats_a_pattern_then_file_order_then_the_profile_variable(
    config_file: Path,
    three_files: dict[str, Path],
    recording_server: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = recording_server()
    config_file.write_text(
        profile("pattern", ["127.0.0.*"], three_files["pattern"])
        + profile("later", ["127.*"], three_files["later"])
        + profile("exact", [LOOPBACK], three_files["exact"])
    )
    token = {name: f"Bearer {path.read_text()}" for name, path in three_files.items()}
    assert sent(server) == token["exact"]  # exact host, although listed last
    config_file.write_text(
        profile("pattern", ["127.0.0.*"], three_files["pattern"])
        + profile("later", ["127.*"], three_files["later"])
    )
    runtime.reset()
    assert sent(server) == token["pattern"]  # two patterns: file order
    monkeypatch.setenv("MLFLOW_SECRETS_PROFILE", "later")
    assert sent(server) == token["later"]  # restricted to one profile
    monkeypatch.setenv("MLFLOW_SECRETS_PROFILE", "nosuch")
    with pytest.raises(ConfigurationError, match="MLFLOW_SECRETS_PROFILE"):
        mlflow_secrets_auth.get_auth()


def test_a_host_no_profile_names_gets_nothing_and_the_error_names_host_profiles_and_file(
    config_file: Path,
    three_files: dict[str, Path],
    recording_server: Callable[[], RecordingServer],
) -> None:
    server = recording_server()
    config_file.write_text(profile("exact", ["mlflow.corp.example"], three_files["exact"]))
    with pytest.raises(HostNotAllowedError) as refused:
        requests.get(f"{server.url}/api/2.0/x", auth=mlflow_secrets_auth.get_auth(), timeout=10)
    assert server.requests == []  # nothing at all was sent
    text = str(refused.value)
    assert f"{LOOPBACK}:{server.port}" in text
    assert "exact" in text and str(config_file) in text


def test_the_env_profile_serves_the_hosts_the_file_does_not_name(
    config_file: Path,
    three_files: dict[str, Path],
    recording_server: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    named, other = recording_server(), recording_server()
    config_file.write_text(profile("named", [f"{LOOPBACK}:{named.port}"], three_files["exact"]))
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "file")
    monkeypatch.setenv("MLFLOW_FILE_SECRET_PATH", str(three_files["envtok"]))
    monkeypatch.setenv("MLFLOW_FILE_AUTH_MODE", "bearer")
    monkeypatch.setenv("MLFLOW_SECRETS_ALLOWED_HOSTS", f"{LOOPBACK}:{other.port}")
    assert sent(named) == f"Bearer {three_files['exact'].read_text()}"
    assert sent(other) == f"Bearer {three_files['envtok'].read_text()}"


def test_a_secret_in_the_file_is_refused_without_showing_it(
    config_file: Path, three_files: dict[str, Path], capfd: pytest.CaptureFixture[str]
) -> None:
    value = f"do-not-show-{uuid.uuid4().hex}"
    config_file.write_text(
        profile("p", ["mlflow.example"], three_files["exact"]) + f'token = "{value}"\n'
    )
    with pytest.raises(ConfigurationError) as refused:
        mlflow_secrets_auth.get_auth()
    assert getattr(refused.value, "key", None) == "token"
    assert "key 'token'" in str(refused.value) and str(config_file) in str(refused.value)
    assert value not in str(refused.value)
    out, err = capfd.readouterr()
    assert value not in out + err


def test_the_file_is_read_again_when_it_changes(
    config_file: Path,
    three_files: dict[str, Path],
    recording_server: Callable[[], RecordingServer],
) -> None:
    server = recording_server()
    config_file.write_text(profile("first", [LOOPBACK], three_files["exact"]))
    assert sent(server) == f"Bearer {three_files['exact'].read_text()}"
    config_file.write_text(profile("second", [LOOPBACK], three_files["later"]) + "\n# edited\n")
    time.sleep(1.2)  # the file is looked at again at most once a second
    assert sent(server) == f"Bearer {three_files['later'].read_text()}"


# -- §5: origins and the proxy rule ---------------------------------------------------------------


@pytest.fixture
def file_env(three_files: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "file")
    monkeypatch.setenv("MLFLOW_FILE_SECRET_PATH", str(three_files["envtok"]))
    monkeypatch.setenv("MLFLOW_FILE_AUTH_MODE", "bearer")
    return three_files["envtok"].read_text()


def test_plain_http_through_a_proxy_is_refused_and_the_proxy_sees_no_credential(
    file_env: str,
    recording_server: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracking, proxy = recording_server(), recording_server()
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    with pytest.raises(HostNotAllowedError) as refused:
        requests.get(f"{tracking.url}/api/2.0/x", auth=mlflow_secrets_auth.get_auth(), timeout=10)
    assert "proxy" in str(refused.value) and "NO_PROXY" in str(refused.value)
    assert proxy.requests == [] and tracking.requests == []
    monkeypatch.setenv("NO_PROXY", LOOPBACK)
    assert sent(tracking, "/api/2.0/x") == f"Bearer {file_env}"
    assert proxy.requests == []


def test_another_port_on_the_tracking_host_gets_no_credential(
    file_env: str,
    recording_server: Callable[[], RecordingServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tracking, neighbour = recording_server(), recording_server()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking.url)
    assert sent(tracking, "/api/2.0/x") == f"Bearer {file_env}"
    with pytest.raises(HostNotAllowedError) as refused:
        requests.get(f"{neighbour.url}/api/2.0/x", auth=mlflow_secrets_auth.get_auth(), timeout=10)
    assert neighbour.requests == []
    assert "MLFLOW_SECRETS_ALLOWED_HOSTS" in str(refused.value)


# -- info and doctor with profiles ----------------------------------------------------------------


@pytest.fixture
def two_profile_file(
    config_file: Path, tmp_path: Path, mlflow_server: MlflowAuthServer
) -> dict[str, str]:
    username, password = f"doc-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    mlflow_server.create_user(username, password)
    served = write_secret_file(
        tmp_path, "mlflow.json", json.dumps({"username": username, "password": password})
    )
    other = write_secret_file(tmp_path, "other.txt", f"other-{uuid.uuid4().hex}")
    other.chmod(0o644)  # readable by others: doctor warns
    host = mlflow_server.url.split("://", 1)[1]
    config_file.write_text(
        f'[profiles.tracking]\nhosts = ["{host}"]\nbackend = "file"\nsecret_path = "{served}"\n\n'
        f'[profiles.other]\nhosts = ["*.other.example"]\nbackend = "file"\n'
        f'secret_path = "{other}"\n'
    )
    return {"password": password, "other": other.read_text(), "host": host}


def run_cli(*args: str) -> tuple[int, str]:
    from click.testing import CliRunner

    from mlflow_secrets_auth.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_info_lists_the_profiles_with_hosts_store_and_origin(
    two_profile_file: dict[str, str], config_file: Path
) -> None:
    code, output = run_cli("info", "--json")
    data = json.loads(output)
    profiles = {p["name"]: p for p in data["profiles"]["profiles"]}
    assert profiles["tracking"]["hosts"] == [two_profile_file["host"]]
    assert profiles["other"]["hosts"] == ["*.other.example"]
    assert profiles["tracking"]["backend"] == profiles["other"]["backend"] == "file"
    assert profiles["tracking"]["defined"] == f"file {config_file}"
    assert code == 0
    code, text = run_cli("info")
    assert "Profiles (from" in text and "*.other.example" in text
    assert two_profile_file["password"] not in output + text
    assert two_profile_file["other"] not in output + text


def test_doctor_checks_each_profile_and_one_with_profile(
    two_profile_file: dict[str, str],
) -> None:
    code, output = run_cli("doctor", "--json")
    checks = json.loads(output)["checks"]
    by_profile = {(c["profile"], c["id"]): c for c in checks}
    for name in ("tracking", "other"):
        assert by_profile[(name, "secret_read")]["status"] == "passed"
        assert by_profile[(name, "auth_header")]["status"] == "passed"
    advice = by_profile[("other", "store_advice")]
    assert advice["status"] == "warning" and "readable" in advice["detail"]
    assert ("tracking", "store_advice") not in by_profile  # its file is 0600
    assert two_profile_file["password"] not in output and two_profile_file["other"] not in output
    code, output = run_cli("doctor", "--json", "--profile", "other")
    assert {c["profile"] for c in json.loads(output)["checks"] if c["profile"]} == {"other"}
    code, output = run_cli("doctor", "--profile", "nosuch")
    assert code == 1 and "--profile nosuch names no profile" in output


def test_doctor_dry_run_picks_the_urls_profile_and_says_which(
    two_profile_file: dict[str, str],
    mlflow_server: MlflowAuthServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    code, output = run_cli("doctor", "--json", "--dry-run", mlflow_server.url)
    checks = {c["id"]: c for c in json.loads(output)["checks"]}
    assert "served by tracking" in checks["profiles"]["detail"]
    assert checks["dry_run"]["status"] == "passed", checks["dry_run"]
    failed = [c["id"] for c in checks.values() if c["status"] == "failed"]
    assert (code, failed) == (0, [])
    assert two_profile_file["password"] not in output
