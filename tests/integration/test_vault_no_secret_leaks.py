"""Every Vault flow at DEBUG: no log record, exception text, repr or console output may contain
a secret (the stored credential, the Vault token, the AppRole secret_id)."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import mlflow_secrets_auth
from mlflow_secrets_auth import runtime
from mlflow_secrets_auth.errors import SecretsAuthError

from support.mlflow_server import MlflowAuthServer
from support.openbao import OpenBaoServer
from support.recording_server import RecordingServer

pytestmark = pytest.mark.integration


class Leaks:
    """Collects every piece of text a user could see, then searches it for secrets."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):
        self.caplog, self.capfd = caplog, capfd
        self.texts: list[str] = []
        self.secrets: list[str] = []
        self.checked = False

    def secret(self, value: str) -> str:
        self.secrets.extend({value, value.strip()})
        return value

    def basic(self, username: str, password: str) -> None:
        pair = f"{username}:{password.strip()}".encode()
        self.secrets.append(base64.b64encode(pair).decode())
        self.secrets.append(password.strip())

    def see(self, *objects: object) -> None:
        for obj in objects:
            self.texts.extend([str(obj), repr(obj)])

    def check(self) -> None:
        self.checked = True
        records = self.caplog.records
        assert records, "nothing was logged: the test would prove nothing"
        for record in records:
            self.texts.append(record.getMessage())
            if record.exc_info and record.exc_info[1] is not None:
                self.texts.append(logging.Formatter().formatException(record.exc_info))
        out, err = self.capfd.readouterr()
        self.texts += [out, err]
        everything = "\n".join(self.texts)
        for value in self.secrets:
            if len(value) >= 4:
                assert value not in everything, "a secret value reached user-visible output"


@pytest.fixture
def leaks(
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Leaks]:
    monkeypatch.setenv("MLFLOW_SECRETS_LOG_LEVEL", "DEBUG")
    caplog.set_level(logging.DEBUG)  # every logger: ours, MLflow's, urllib3's, hvac's
    checker = Leaks(caplog, capfd)
    yield checker
    assert checker.checked, "the test must end with leaks.check()"


def _user(server: MlflowAuthServer, leaks: Leaks) -> tuple[str, str]:
    username = f"leak-{uuid.uuid4().hex[:8]}"
    password = leaks.secret(f"p@ss:w/rd%-{uuid.uuid4().hex[:10]}\n")
    server.create_user(username, password.strip())
    leaks.basic(username, password)
    return username, password


def _env(monkeypatch: pytest.MonkeyPatch, openbao: OpenBaoServer, path: str, **extra: str) -> None:
    values = {
        "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
        "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": openbao.root_token,
        "MLFLOW_VAULT_SECRET_PATH": f"secret/{path}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        **extra,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_basic_flow_rotation_and_second_401(
    leaks: Leaks,
    openbao: OpenBaoServer,
    mlflow_server: MlflowAuthServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    leaks.secret(openbao.root_token)
    username, password = _user(mlflow_server, leaks)
    path = f"leak/{uuid.uuid4().hex[:8]}"
    openbao.write_secret("secret", path, {"username": username, "password": password})
    _env(
        monkeypatch,
        openbao,
        path,
        MLFLOW_VAULT_AUTH_MODE="basic",
        MLFLOW_TRACKING_URI=mlflow_server.url,
    )
    client = MlflowClient()
    experiment = client.create_experiment(f"leak-{uuid.uuid4().hex[:8]}")
    client.log_param(client.create_run(experiment).info.run_id, "p", "v")

    rotated = leaks.secret(f"r0t@:/%-{uuid.uuid4().hex[:10]}\n")
    leaks.basic(username, rotated)
    mlflow_server.update_password(username, rotated.strip())
    openbao.write_secret("secret", path, {"username": username, "password": rotated})
    client.search_experiments()  # recovers through one replay

    wrong = leaks.secret(f"wr0ng@:/%-{uuid.uuid4().hex[:10]}\n")
    leaks.basic(username, wrong)
    mlflow_server.update_password(username, f"server-side-{uuid.uuid4().hex}")
    openbao.write_secret("secret", path, {"username": username, "password": wrong})
    with pytest.raises(MlflowException) as second_401:
        client.search_experiments()
    leaks.see(second_401.value, mlflow_secrets_auth.get_auth(), runtime.CACHE)
    leaks.check()


def test_bearer_flow_and_refused_host(
    leaks: Leaks,
    openbao: OpenBaoServer,
    mlflow_server: MlflowAuthServer,
    monkeypatch: pytest.MonkeyPatch,
    recording_server: Callable[[], RecordingServer],
) -> None:
    leaks.secret(openbao.root_token)
    username, _ = _user(mlflow_server, leaks)
    token = leaks.secret(f"tok@:/%-{uuid.uuid4().hex}\n")
    mlflow_server.set_tokens({token.strip(): username})
    path = f"leak/{uuid.uuid4().hex[:8]}"
    openbao.write_secret("secret", path, {"token": token})
    _env(monkeypatch, openbao, path, MLFLOW_TRACKING_URI=mlflow_server.url)
    MlflowClient().search_experiments()

    decoy = recording_server()
    monkeypatch.setenv("MLFLOW_SECRETS_ALLOWED_HOSTS", "elsewhere.example")
    with pytest.raises(MlflowException) as refused:
        MlflowClient(tracking_uri=decoy.url).search_experiments()
    leaks.see(refused.value, mlflow_secrets_auth.get_auth())
    leaks.check()


def test_error_paths_approle_parse_and_mismatch(
    leaks: Leaks,
    openbao: OpenBaoServer,
    monkeypatch: pytest.MonkeyPatch,
    recording_server: Callable[[], RecordingServer],
) -> None:
    sink = recording_server()
    policy = f"leak-{uuid.uuid4().hex[:8]}"
    openbao.create_policy(policy, 'path "secret/data/leak/*" { capabilities = ["read"] }')
    openbao.enable_approle()
    role_id, secret_id = openbao.create_approle(policy, [policy])
    leaks.secret(secret_id)
    monkeypatch.setenv("MLFLOW_SECRETS_ALLOWED_HOSTS", "127.0.0.1")
    cases = [
        # (stored secret, extra env) — each must fail with a readable error and no value
        (
            {"username": "u", "password": leaks.secret("mismatch@:/%-secret\n")},
            {"MLFLOW_VAULT_AUTH_MODE": "bearer"},
        ),
        ({"api_key": leaks.secret("wrong-shape@:/%\n")}, {}),
        ({"token": leaks.secret("no-colon-token@/%\n")}, {"MLFLOW_VAULT_AUTH_MODE": "basic"}),
        ({"token": leaks.secret("line\nbreak-inside@:/%")}, {}),
    ]
    for stored, extra in cases:
        path = f"leak/{uuid.uuid4().hex[:8]}"
        openbao.write_secret("secret", path, stored)
        runtime.reset()
        _env(monkeypatch, openbao, path, VAULT_TOKEN="", **extra)
        monkeypatch.delenv("VAULT_TOKEN")
        monkeypatch.setenv("VAULT_ROLE_ID", role_id)
        monkeypatch.setenv("VAULT_SECRET_ID", secret_id)
        with pytest.raises(SecretsAuthError) as info:
            requests.get(sink.url, auth=mlflow_secrets_auth.get_auth(), timeout=10)
        leaks.see(info.value, mlflow_secrets_auth.get_auth())
    monkeypatch.setenv("VAULT_SECRET_ID", leaks.secret("not-the-secret-id-value"))
    runtime.reset()
    with pytest.raises(SecretsAuthError) as login:
        requests.get(sink.url, auth=mlflow_secrets_auth.get_auth(), timeout=10)
    leaks.see(login.value)
    assert sink.requests == []
    leaks.check()
