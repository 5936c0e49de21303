"""Shared fixtures: real servers (started once per session) and a known environment per test.

The helpers live in `testbed/support/` (shared with the examples, the demo and the benchmarks) and
are imported as the top-level package `support`; `testbed/` is put on `sys.path` explicitly so that
works whatever pytest import mode is used.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

_TESTBED_DIR = Path(__file__).resolve().parent.parent / "testbed"
if str(_TESTBED_DIR) not in sys.path:
    sys.path.insert(0, str(_TESTBED_DIR))

from support.mlflow_server import MlflowAuthServer  # noqa: E402
from support.openbao import SKIP_PREFIX, OpenBaoServer, openbao_unavailable_reason  # noqa: E402
from support.recording_server import RecordingServer  # noqa: E402

# Variables that would let a test pick up credentials or endpoints from the developer's shell
# (or from a previous test) instead of the ones it sets itself.
_CLEARED_PREFIXES = (
    "MLFLOW_SECRETS_",
    "MLFLOW_VAULT_",
    "MLFLOW_AWS_",
    "MLFLOW_AZURE_",
    "VAULT_",
    "AWS_",
    "AZURE_",
    "IDENTITY_",
    "MSI_",
    "MLFLOW_GCP_",
    "MLFLOW_FILE_",
    "MLFLOW_EXEC_",
    "GOOGLE_",
    "GCE_",
    "CLOUDSDK_",
    "NO_GCE_CHECK",
    "ACTIONS_ID_TOKEN_",
)
_CLEARED_NAMES = frozenset(
    {
        "MLFLOW_TRACKING_AUTH",
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_TRACKING_USERNAME",
        "MLFLOW_TRACKING_PASSWORD",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_AUTH_HEADER_NAME",
    }
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Start every test from a known environment, and keep boto3 off the network.

    AWS config and credentials files point at paths that do not exist, and the EC2 instance
    metadata lookup is disabled, so a missing credential fails fast instead of probing
    169.254.169.254 or reading the developer's ~/.aws.
    """
    for name in list(os.environ):
        if name.startswith(_CLEARED_PREFIXES) or name in _CLEARED_NAMES:
            monkeypatch.delenv(name, raising=False)
    missing = tmp_path_factory.getbasetemp() / "clean-env-no-aws"  # never created
    # No developer's ~/.config/mlflow-secrets-auth/config.toml or ~/.vault-token either.
    home = tmp_path_factory.getbasetemp() / "clean-env-home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(missing / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver's one server per session binds 127.0.0.1 only, whichever test (a unit
    test, or a documentation snippet run by an integration test) starts it first."""
    return ("127.0.0.1", 0)


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """One OpenBao dev server for the session (KV v2 at `secret/`; namespaces supported).

    Tests share it, so they should use unique mounts/paths (or the idempotent `enable_*`
    helpers) and never assume an empty server.
    """
    reason = openbao_unavailable_reason()
    if reason is not None:
        pytest.skip(SKIP_PREFIX + reason)
    server = OpenBaoServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server() -> Iterator[MlflowAuthServer]:
    """One authenticated MLflow tracking server for the session (start-up takes ~10 s).

    Tests share it, so they should create uniquely named users, experiments and models.
    """
    server = MlflowAuthServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def recording_server() -> Iterator[Callable[[], RecordingServer]]:
    """Factory for started `RecordingServer`s; all of them are stopped after the test."""
    servers: list[RecordingServer] = []

    def factory() -> RecordingServer:
        server = RecordingServer().start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        server.stop()


@pytest.fixture(autouse=True)
def fresh_plugin_state() -> Iterator[None]:
    """Each test starts with no cached credential, backend, auth object or MLflow URI global."""
    import logging

    from mlflow_secrets_auth import runtime

    def reset() -> None:
        runtime.reset()
        logging.getLogger("mlflow_secrets_auth").setLevel(logging.NOTSET)
        tracking = sys.modules.get("mlflow.tracking._tracking_service.utils")
        if tracking is not None:
            tracking._tracking_uri = None  # type: ignore[attr-defined]
        registry = sys.modules.get("mlflow.tracking._model_registry.utils")
        if registry is not None:
            registry._registry_uri = None  # type: ignore[attr-defined]

    reset()
    yield
    reset()
