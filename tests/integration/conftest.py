"""Fixtures for the AWS Secrets Manager and Azure Key Vault backends: moto's real server, and a
loopback HTTPS Key Vault fake with a managed-identity token endpoint.

Servers are started once per session (each in well under a second); every test gets its own
environment (`clean_env` runs first) and, for the Key Vault fake, an emptied vault.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from support.azure_keyvault_fake import (
    IdentityEndpointFake,
    KeyVaultFake,
    TlsFiles,
    make_tls_files,
)
from support.leaks import LeakCheck
from support.mlflow_server import MlflowAuthServer
from support.moto_server import AwsSecret, MotoServer
from support.openbao import OpenBaoServer
from support.ports import LOOPBACK, free_port
from support.recording_server import RecordingServer


def _keep_loopback_off_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1,localhost")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections (into the kernel's backlog) but never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


@pytest.fixture
def leak_check(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> LeakCheck:
    return LeakCheck(caplog, capfd)


@pytest.fixture
def target(
    recording_server: Callable[[], RecordingServer], monkeypatch: pytest.MonkeyPatch
) -> RecordingServer:
    """A loopback server standing in for MLflow; credentials may go to it."""
    monkeypatch.setenv("MLFLOW_SECRETS_ALLOWED_HOSTS", LOOPBACK)
    return recording_server()


VaultEnv = Callable[..., None]


@pytest.fixture
def vault_env(openbao: OpenBaoServer, monkeypatch: pytest.MonkeyPatch) -> VaultEnv:
    """Point the plugin at the session's OpenBao; keyword arguments override ("" unsets)."""

    def configure(secret_path: str, **extra: str) -> None:
        values = {
            "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
            "VAULT_ADDR": openbao.addr,
            "VAULT_TOKEN": openbao.root_token,
            "MLFLOW_VAULT_SECRET_PATH": secret_path,
            "MLFLOW_SECRETS_ALLOWED_HOSTS": LOOPBACK,
            "MLFLOW_SECRETS_TIMEOUT_SEC": "3",
            "NO_PROXY": "127.0.0.1,localhost",
            **extra,
        }
        for name, value in values.items():
            if value == "":
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)

    return configure


# --- AWS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """moto's server on 127.0.0.1 for the whole session (tests use unique secret names)."""
    server = MotoServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def aws_env(
    moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> MotoServer:
    """boto3's default chain pointed at moto (endpoint, region, dummy keys) for this test."""
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    _keep_loopback_off_proxies(monkeypatch)
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "aws-secrets-manager")
    return moto_server


@pytest.fixture
def aws_secret(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> Callable[[str | bytes], AwsSecret]:
    """Factory: create a secret in moto and make it MLFLOW_AWS_SECRET_NAME for this test."""

    def create(value: str | bytes) -> AwsSecret:
        secret = aws_env.create_secret(value)
        monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", secret.name)
        return secret

    return create


# --- Azure -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def vault_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("vault-tls"))


@pytest.fixture(scope="session")
def keyvault_servers(vault_tls: TlsFiles) -> Iterator[KeyVaultFake]:
    identity = IdentityEndpointFake().start()
    vault = KeyVaultFake(vault_tls, identity).start()
    try:
        yield vault
    finally:
        vault.stop()
        identity.stop()


@pytest.fixture
def azure_keyvault(
    keyvault_servers: KeyVaultFake,
    vault_tls: TlsFiles,
    monkeypatch: pytest.MonkeyPatch,
    clean_env: None,
) -> KeyVaultFake:
    """An empty fake vault, trusted through REQUESTS_CA_BUNDLE, reached with a managed identity.

    `AZURE_TOKEN_CREDENTIALS=ManagedIdentityCredential` pins DefaultAzureCredential to the one
    credential that uses IDENTITY_ENDPOINT (azure-identity then also skips its IMDS probe), and
    `AZURE_POD_IDENTITY_AUTHORITY_HOST` points any IMDS request at a closed loopback port, so no
    test can reach 169.254.169.254 or the Azure CLI.
    """
    # The SDK caches each vault's challenge process-wide; forget it so that every test starts
    # with the challenge round-trip, as a new process does.
    from azure.keyvault.secrets._shared import http_challenge_cache

    vault = keyvault_servers
    http_challenge_cache.remove_challenge_for_url(vault.url)
    vault.reset()
    vault.identity.reset()
    env = {
        **vault.identity.env(),
        "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
        "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://{LOOPBACK}:{free_port()}",
        # CI points this at the system bundle; the fake's certificate is self-signed.
        "REQUESTS_CA_BUNDLE": str(vault_tls.cert_path),
        "MLFLOW_SECRETS_AUTH_ENABLE": "azure-key-vault",
        "MLFLOW_AZURE_KEY_VAULT_URL": vault.url,
        # The challenge names vault.azure.net, which 127.0.0.1 is not a subdomain of.
        "MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE": "false",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    _keep_loopback_off_proxies(monkeypatch)
    return vault


# --- end to end --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedRun:
    run_id: str
    experiment_id: str


class MlflowRunCheck:
    """Logs a run with the MLflow client, authenticated only by the plugin (MLFLOW_TRACKING_AUTH
    must already name it), and checks as the admin that the server has all of it."""

    def log(self, tracking_uri: str, label: str) -> LoggedRun:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        try:
            name = f"secrets-auth-{label}-{uuid.uuid4().hex[:8]}"
            experiment_id = mlflow.create_experiment(name)
            with mlflow.start_run(experiment_id=experiment_id) as run:
                mlflow.log_param("backend", label)
                mlflow.log_metric("score", 0.875)
                mlflow.log_text(f"logged through {label}\n", "notes/hello.txt")
            return LoggedRun(run.info.run_id, experiment_id)
        finally:
            mlflow.set_tracking_uri(None)  # back to the default (also unsets the variable)

    def assert_visible_to_admin(
        self, server: MlflowAuthServer, run: LoggedRun, label: str, username: str
    ) -> None:
        data = server.admin_request("GET", f"/api/2.0/mlflow/runs/get?run_id={run.run_id}")
        params, metrics = data["run"]["data"]["params"], data["run"]["data"]["metrics"]
        assert {"key": "backend", "value": label} in params
        assert [(m["key"], m["value"]) for m in metrics] == [("score", 0.875)]
        listing = server.admin_request(
            "GET", f"/api/2.0/mlflow/artifacts/list?run_id={run.run_id}&path=notes"
        )
        assert [f["path"] for f in listing["files"]] == ["notes/hello.txt"]
        stored = list(server.artifacts_dir.rglob("hello.txt"))
        assert any(p.read_text() == f"logged through {label}\n" for p in stored)
        permission = server.admin_request(
            "GET",
            f"/api/3.0/mlflow/users/permissions/get?username={username}"
            f"&resource_type=experiment&resource_id={run.experiment_id}",
        )
        # MLflow grants the creator MANAGE: the server saw the requests as this user.
        assert permission["permission"] == "MANAGE", permission


@pytest.fixture
def mlflow_run_check() -> MlflowRunCheck:
    return MlflowRunCheck()
