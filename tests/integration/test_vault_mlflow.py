"""Unchanged MLflow code against a real authenticated MLflow server, credentials from real
OpenBao, through ``MLFLOW_TRACKING_AUTH=mlflow_secrets_auth`` (the entry point MLflow loads)."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlflow_secrets_auth import runtime

from support.counting_proxy import CountingProxy
from support.mlflow_server import MlflowAuthServer
from support.openbao import OpenBaoServer
from support.recording_server import RecordingServer

pytestmark = pytest.mark.integration

# A password with the characters that break credentials put into URLs, plus the classic
# trailing newline of a value pasted into a secret store (stripped by the plugin).
PASSWORD_CHARS = "p@ss:w/rd%-"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Setup:
    """One MLflow user whose credentials live in OpenBao, and the env that wires the plugin."""

    def __init__(
        self, openbao: OpenBaoServer, server: MlflowAuthServer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        self.openbao, self.server, self.monkeypatch = openbao, server, monkeypatch
        self.username = unique("user")
        self.password = PASSWORD_CHARS + uuid.uuid4().hex[:12]
        self.path = unique("mlflow/auth")
        server.create_user(self.username, self.password)
        self.store_basic(self.password)
        for name, value in {
            "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
            "MLFLOW_TRACKING_URI": server.url,
            "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
            "VAULT_ADDR": openbao.addr,
            "VAULT_TOKEN": openbao.root_token,
            "MLFLOW_VAULT_SECRET_PATH": f"secret/{self.path}",
            "MLFLOW_VAULT_AUTH_MODE": "basic",
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        }.items():
            monkeypatch.setenv(name, value)

    def store_basic(self, password: str) -> None:
        self.openbao.write_secret(
            "secret", self.path, {"username": self.username, "password": password + "\n"}
        )

    def use_bearer(self, token: str) -> None:
        self.server.set_tokens({token: self.username})
        self.openbao.write_secret("secret", self.path, {"token": token + "\n"})
        self.monkeypatch.setenv("MLFLOW_VAULT_AUTH_MODE", "bearer")

    def admin_get(self, path: str, **params: str) -> dict:
        response = requests.get(
            self.server.url + path,
            params=params,
            auth=(self.server.admin_username, self.server.admin_password),
            timeout=30,
        )
        response.raise_for_status()
        return response.json()


@pytest.fixture
def setup(
    openbao: OpenBaoServer, mlflow_server: MlflowAuthServer, monkeypatch: pytest.MonkeyPatch
) -> Setup:
    return Setup(openbao, mlflow_server, monkeypatch)


def train(tmp_path: Path) -> tuple[str, str]:
    """What a user's unchanged training script does: run, params, metrics, artifact, registry."""
    mlflow.set_experiment(unique("exp"))
    artifact = tmp_path / "notes.txt"
    artifact.write_text("hello from a training job\n")
    with mlflow.start_run() as run:
        mlflow.log_param("lr", "0.01")
        mlflow.log_metric("loss", 0.25, step=1)
        mlflow.log_artifact(str(artifact))
    model_name = unique("model")
    client = MlflowClient()
    client.create_registered_model(model_name)
    client.create_model_version(
        model_name, source=f"{run.info.artifact_uri}/notes.txt", run_id=run.info.run_id
    )
    return run.info.run_id, model_name


def assert_recorded(setup: Setup, run_id: str, model_name: str) -> None:
    """Verified as the admin, independently of the plugin."""
    run = setup.admin_get("/api/2.0/mlflow/runs/get", run_id=run_id)["run"]
    assert {p["key"]: p["value"] for p in run["data"]["params"]} == {"lr": "0.01"}
    assert [m["value"] for m in run["data"]["metrics"]] == [0.25]
    files = setup.admin_get("/api/2.0/mlflow/artifacts/list", run_id=run_id)["files"]
    assert [f["path"] for f in files] == ["notes.txt"]
    versions = setup.admin_get("/api/2.0/mlflow/registered-models/get", name=model_name)
    assert versions["registered_model"]["name"] == model_name
    assert versions["registered_model"]["latest_versions"][0]["run_id"] == run_id


@pytest.mark.smoke
def test_basic_mode_logs_run_artifact_and_model(setup: Setup, tmp_path: Path) -> None:
    run_id, model = train(tmp_path)
    assert_recorded(setup, run_id, model)


def test_bearer_mode_logs_run_artifact_and_model(setup: Setup, tmp_path: Path) -> None:
    setup.use_bearer(unique("tok") + "@:/%")
    run_id, model = train(tmp_path)
    assert_recorded(setup, run_id, model)


def test_custom_header_mode(setup: Setup, tmp_path: Path) -> None:
    setup.use_bearer(unique("key"))
    setup.monkeypatch.setenv("MLFLOW_AUTH_HEADER_NAME", "X-Api-Key")
    run_id, model = train(tmp_path)
    assert_recorded(setup, run_id, model)


def test_without_the_plugin_the_server_refuses(setup: Setup) -> None:
    """Control: the server really does require the credential the plugin supplies."""
    setup.monkeypatch.delenv("MLFLOW_TRACKING_AUTH")
    with pytest.raises(MlflowException, match="401"):
        MlflowClient().search_experiments()


def replay_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retrying once" in r.getMessage()]


def test_rotation_recovers_with_exactly_one_replay(
    setup: Setup, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    client = MlflowClient()
    experiment_id = client.create_experiment(unique("rotate"))  # cache now holds the old password
    new_password = PASSWORD_CHARS + uuid.uuid4().hex[:12]
    setup.server.update_password(setup.username, new_password)
    setup.store_basic(new_password)

    run = client.create_run(experiment_id)  # 401 with the cached password, then one replay
    client.log_metric(run.info.run_id, "after_rotation", 1.0)

    assert len(replay_messages(caplog)) == 1
    assert runtime.CACHE.stats.invalidations == 1
    assert runtime.CACHE.stats.fetches == 2
    metrics = setup.admin_get("/api/2.0/mlflow/runs/get", run_id=run.info.run_id)["run"]["data"]
    assert metrics["metrics"][0]["key"] == "after_rotation"


def test_second_401_reaches_the_caller(setup: Setup, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    client = MlflowClient()
    client.search_experiments()
    setup.server.update_password(setup.username, PASSWORD_CHARS + "server-only-new")
    setup.store_basic(PASSWORD_CHARS + "also-wrong-in-vault")
    with pytest.raises(MlflowException) as info:
        client.search_experiments()
    assert "401" in str(info.value)
    assert len(replay_messages(caplog)) == 1
    assert any("rejected a freshly fetched credential" in r.getMessage() for r in caplog.records)


def test_allowlist_is_enforced_on_mlflows_real_path(
    setup: Setup, recording_server: Callable[[], RecordingServer]
) -> None:
    decoy = recording_server()
    setup.monkeypatch.setenv("MLFLOW_TRACKING_URI", decoy.url)
    setup.monkeypatch.setenv("MLFLOW_SECRETS_ALLOWED_HOSTS", "mlflow.example.com")
    with pytest.raises(MlflowException) as info:
        MlflowClient().search_experiments()
    message = str(info.value)
    assert "127.0.0.1" in message
    assert "MLFLOW_SECRETS_ALLOWED_HOSTS" in message
    assert all(not r.has_header("authorization") for r in decoy.requests)
    assert decoy.requests == []


def test_default_allowlist_refuses_a_client_pointed_elsewhere(
    setup: Setup, recording_server: Callable[[], RecordingServer]
) -> None:
    """Tracking URI is the real server; a client aimed at another host gets no credential."""
    decoy = recording_server()
    decoy.set_default_response(200, {"experiments": []})
    with pytest.raises(MlflowException, match="MLFLOW_SECRETS_ALLOWED_HOSTS"):
        MlflowClient(tracking_uri=decoy.localhost_url).search_experiments()
    assert decoy.requests == []


@pytest.mark.parametrize("header", ["Authorization", "X-Api-Key"])
def test_cross_origin_redirect_never_carries_credentials(
    setup: Setup, recording_server: Callable[[], RecordingServer], header: str
) -> None:
    allowed, elsewhere = recording_server(), recording_server()
    elsewhere.set_default_response(200, {"experiments": []})
    allowed.redirect(
        "/api/2.0/mlflow/experiments/search",
        elsewhere.localhost_url + "/api/2.0/mlflow/experiments/search",
        status=307,
    )
    if header != "Authorization":
        setup.monkeypatch.setenv("MLFLOW_AUTH_HEADER_NAME", header)
    setup.monkeypatch.setenv("MLFLOW_TRACKING_URI", allowed.url)
    # An API request sent to another origin counts as a login page (SPEC §7): never followed.
    with pytest.raises(MlflowException, match="HTML login page answered instead of the MLflow"):
        MlflowClient().search_experiments()
    assert allowed.requests[0].has_header(header)
    assert elsewhere.requests == []


def test_single_flight_32_threads_cold_cache_one_secret_read(
    setup: Setup, openbao: OpenBaoServer
) -> None:
    with CountingProxy(openbao.addr) as proxy:
        setup.monkeypatch.setenv("VAULT_ADDR", proxy.url)
        client = MlflowClient()
        barrier = threading.Barrier(32)
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                barrier.wait(10)
                client.search_experiments(max_results=1)
            except BaseException as error:  # collected and asserted below
                errors.append(error)

        threads = [threading.Thread(target=worker) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        reads = proxy.count("GET", f"/v1/secret/data/{setup.path}")
        assert reads == 1
