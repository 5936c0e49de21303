"""Several backends at once (SPEC §2), and AWS rotation recovered on MLflow's side."""

from __future__ import annotations

import json
import logging
import secrets
import uuid
from collections.abc import Callable

import pytest
import requests
from mlflow import MlflowClient

import mlflow_secrets_auth
from mlflow_secrets_auth import runtime
from mlflow_secrets_auth.errors import ConfigurationError

from support.mlflow_server import MlflowAuthServer
from support.moto_server import AwsSecret, MotoServer
from support.openbao import OpenBaoServer
from support.recording_server import RecordingServer

pytestmark = pytest.mark.integration


def sent_authorization(sink: RecordingServer) -> str | None:
    requests.get(sink.url + "/api", auth=mlflow_secrets_auth.get_auth(), timeout=10)
    return sink.requests[-1].header("authorization")


@pytest.fixture
def both_stores(
    openbao: OpenBaoServer,
    aws_secret: Callable[[str | bytes], AwsSecret],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Vault and AWS both configured, each holding a different token."""
    path = f"select/{uuid.uuid4().hex[:8]}"
    openbao.write_secret("secret", path, {"token": "from-vault"})
    aws_secret(json.dumps({"token": "from-aws"}))
    for name, value in {
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": openbao.root_token,
        "MLFLOW_VAULT_SECRET_PATH": f"secret/{path}",
        "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)


def test_priority_order_not_listing_order(
    both_stores: None,
    monkeypatch: pytest.MonkeyPatch,
    recording_server: Callable[[], RecordingServer],
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "azure-key-vault, aws-secrets-manager,VAULT")
    assert sent_authorization(recording_server()) == "Bearer from-vault"


def test_incomplete_backend_is_skipped_with_a_debug_line(
    both_stores: None,
    monkeypatch: pytest.MonkeyPatch,
    recording_server: Callable[[], RecordingServer],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "vault,aws-secrets-manager")
    monkeypatch.delenv("MLFLOW_VAULT_SECRET_PATH")
    assert sent_authorization(recording_server()) == "Bearer from-aws"
    skipped = [r for r in caplog.records if r.getMessage().startswith("Skipping vault")]
    assert len(skipped) == 1
    assert skipped[0].levelno == logging.DEBUG
    assert "MLFLOW_VAULT_SECRET_PATH" in skipped[0].getMessage()


def test_per_backend_flags_combine_with_the_list(
    both_stores: None,
    monkeypatch: pytest.MonkeyPatch,
    recording_server: Callable[[], RecordingServer],
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "aws-secrets-manager")
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE_VAULT", "on")
    assert sent_authorization(recording_server()) == "Bearer from-vault"


def test_every_enabled_backend_incomplete_names_each_missing_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "vault,aws-secrets-manager,azure-key-vault")
    with pytest.raises(ConfigurationError) as info:
        mlflow_secrets_auth.get_auth()
    message = str(info.value)
    for expected in ("VAULT_ADDR", "MLFLOW_AWS_SECRET_NAME", "MLFLOW_AZURE_KEY_VAULT_URL"):
        assert expected in message


def test_aws_rotation_recovers_on_mlflows_side_with_one_replay(
    mlflow_server: MlflowAuthServer,
    aws_secret: Callable[[str | bytes], AwsSecret],
    aws_env: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    username = f"aws-rot-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    mlflow_server.create_user(username, password)
    secret = aws_secret(json.dumps({"username": username, "password": password}))
    for name, value in {
        "MLFLOW_AWS_AUTH_MODE": "basic",
        "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    client = MlflowClient()
    experiment_id = client.create_experiment(f"aws-rot-{uuid.uuid4().hex[:8]}")

    rotated = secrets.token_urlsafe(18)
    mlflow_server.update_password(username, rotated)
    aws_env.put_value(secret, json.dumps({"username": username, "password": rotated}))
    run = client.create_run(experiment_id)  # 401 with the cached password, then one replay

    assert run.info.run_id
    replays = [r for r in caplog.records if "retrying once" in r.getMessage()]
    assert len(replays) == 1
    assert runtime.CACHE.stats.invalidations == 1
    assert runtime.CACHE.stats.fetches == 2
