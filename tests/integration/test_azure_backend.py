"""Azure Key Vault backend against a loopback HTTPS fake of the Key Vault secrets API, through the
real azure-keyvault-secrets client and DefaultAzureCredential (pinned to a loopback App Service
managed-identity endpoint). See support/azure_keyvault_fake.py for the protocol it speaks."""

from __future__ import annotations

import base64
import json
import os
import secrets
import time
import uuid
from typing import TYPE_CHECKING

import certifi
import pytest

from mlflow_secrets_auth.backends.azure import AzureKeyVaultStore, AzureSettings
from mlflow_secrets_auth.credentials import parse_secret
from mlflow_secrets_auth.errors import BackendError
from mlflow_secrets_auth.settings import load_settings

from support.azure_keyvault_fake import KeyVaultFake
from support.mlflow_server import MlflowAuthServer
from support.plugin_calls import get_through_plugin, secret_value
from support.ports import LOOPBACK, free_port
from support.recording_server import RecordingServer

if TYPE_CHECKING:  # fixtures' types, defined in this directory's conftest.py
    from conftest import MlflowRunCheck

    from support.leaks import LeakCheck

pytestmark = pytest.mark.integration

NAME = "mlflow-credential"


def backend_from_env() -> AzureKeyVaultStore:
    """The backend exactly as the plugin would build it from the current environment."""
    settings = load_settings(os.environ).backend
    assert isinstance(settings, AzureSettings)
    return AzureKeyVaultStore(settings)


def fetch_error(backend: AzureKeyVaultStore | None = None) -> BackendError:
    backend = backend or backend_from_env()
    try:
        with pytest.raises(BackendError) as info:
            backend.fetch()
    finally:
        backend.close()
    error = info.value
    assert error.backend == "azure-key-vault"
    assert str(error).startswith(f"azure-key-vault: {error.step} failed: ")
    return error


@pytest.fixture
def vault(azure_keyvault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch) -> KeyVaultFake:
    """The fake vault, with MLFLOW_AZURE_SECRET_NAME pointing at NAME."""
    monkeypatch.setenv("MLFLOW_AZURE_SECRET_NAME", NAME)
    return azure_keyvault


# --- reading -----------------------------------------------------------------------------------


def test_latest_version_through_the_challenge_protocol(vault: KeyVaultFake) -> None:
    vault.set_secret(NAME, '{"token": "tok-old"}')
    latest = vault.set_secret(NAME, '{"token": "tok-latest"}')
    backend = backend_from_env()
    assert backend._client is None  # built on first fetch, not on construction

    fetched = backend.fetch()
    backend.close()

    assert fetched.payload == '{"token": "tok-latest"}'
    assert fetched.version == latest
    assert fetched.location == f"{vault.url}/secrets/{NAME}/{latest}"
    assert parse_secret(fetched.payload, "bearer").authorization == "Bearer tok-latest"
    # Key Vault's challenge: an unauthenticated probe, one token, then the authorized read.
    first, *_, last = vault.requests
    assert (first.authorized, first.status) == (False, 401)
    assert (last.authorized, last.status, last.path) == (True, 200, f"/secrets/{NAME}/")
    assert last.api_version
    assert vault.identity.token_requests == 1


def test_pinned_version(vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch) -> None:
    pinned = vault.set_secret(NAME, "pinned-token\n")
    vault.set_secret(NAME, "newer-token")
    monkeypatch.setenv("MLFLOW_AZURE_SECRET_VERSION", pinned)
    backend = backend_from_env()

    fetched = backend.fetch()
    backend.close()

    assert fetched.payload == "pinned-token\n"
    assert fetched.version == pinned
    assert parse_secret(fetched.payload, "bearer").authorization == "Bearer pinned-token"
    assert backend.settings.identity.endswith(f":{pinned}")  # its own cache entry


def test_username_password_in_basic_mode(
    vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.set_secret(NAME, '{"username": "bob", "password": "p@ss:/%w0rd"}')
    monkeypatch.setenv("MLFLOW_AZURE_AUTH_MODE", "basic")
    backend = backend_from_env()

    credential = parse_secret(backend.fetch().payload, backend.settings.auth_mode)
    backend.close()

    assert (credential.kind, credential.username) == ("basic", "bob")


def test_client_and_token_are_reused_and_rotation_is_seen(vault: KeyVaultFake) -> None:
    vault.set_secret(NAME, "before-rotation")
    backend = backend_from_env()
    first = backend.fetch()
    client = backend._client
    probes = sum(not r.authorized for r in vault.requests)

    rotated = vault.set_secret(NAME, "after-rotation")
    second = backend.fetch()
    backend.close()

    assert (first.payload, second.payload) == ("before-rotation", "after-rotation")
    assert second.version == rotated != first.version
    assert backend._client is None and client is not None  # closed now; one client before
    assert vault.secret_reads(NAME) == 2
    assert vault.identity.token_requests == 1  # the access token was reused
    assert sum(not r.authorized for r in vault.requests) == probes == 1  # and the challenge


def test_azure_token_credentials_pins_the_chain(vault: KeyVaultFake) -> None:
    vault.set_secret(NAME, "x")
    backend = backend_from_env()
    backend.fetch()

    credential = backend._credential
    assert credential is not None
    assert [type(c).__name__ for c in credential.credentials] == ["ManagedIdentityCredential"]
    backend.close()


# --- read failures -----------------------------------------------------------------------------


def test_secret_not_found(vault: KeyVaultFake) -> None:
    error = fetch_error()

    assert error.step == "read"
    assert error.detail.startswith(f"Secret not found: {NAME} in {vault.url}")
    assert "SecretNotFound" in error.detail
    assert "MLFLOW_AZURE_SECRET_NAME" in error.fix and "MLFLOW_AZURE_KEY_VAULT_URL" in error.fix


def test_pinned_version_not_found(vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch) -> None:
    vault.set_secret(NAME, "x")
    monkeypatch.setenv("MLFLOW_AZURE_SECRET_VERSION", "0123456789abcdef")

    error = fetch_error()

    assert error.step == "read"
    assert f"Secret not found: {NAME} (version 0123456789abcdef)" in error.detail
    assert "MLFLOW_AZURE_SECRET_VERSION" in error.fix


def test_forbidden(vault: KeyVaultFake) -> None:
    vault.set_secret(NAME, "guarded")
    vault.forbid(NAME)

    error = fetch_error()

    assert error.step == "read"
    assert "forbidden" in error.detail and "AccessDenied" in error.detail
    assert "'get' permission" in error.fix and "Key Vault Secrets User" in error.fix


def test_disabled_secret(vault: KeyVaultFake) -> None:
    vault.set_secret(NAME, "off")
    vault.disable(NAME)

    error = fetch_error()

    assert error.step == "read"
    assert "is disabled" in error.detail and "SecretDisabled" in error.detail
    assert "set-attributes --enabled true" in error.fix


# --- login failures ----------------------------------------------------------------------------


def test_identity_endpoint_failing_is_a_login_failure(vault: KeyVaultFake) -> None:
    vault.set_secret(NAME, "x")
    vault.identity.fail_with(500, {"statusCode": 500, "message": "identity service unavailable"})

    error = fetch_error()

    assert error.step == "login"
    assert "ManagedIdentityCredential" in error.detail
    assert "identity service unavailable" in error.detail
    for variable in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_TOKEN_CREDENTIALS"):
        assert variable in error.fix
    assert "managed identity" in error.fix and "workload identity" in error.fix
    assert vault.secret_reads(NAME) == 0


def test_identity_endpoint_unreachable_is_a_login_failure(
    vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"http://{LOOPBACK}:{free_port()}/msi/token")

    error = fetch_error()

    assert error.step == "login"
    assert "ManagedIdentityCredential" in error.detail and "refused" in error.detail
    assert "IDENTITY_ENDPOINT" in error.fix


def test_token_rejected_by_the_vault_is_a_login_failure(vault: KeyVaultFake) -> None:
    vault.set_secret(NAME, "x")
    backend = backend_from_env()
    backend.fetch()
    vault.reject_all_tokens()  # e.g. revoked, or issued for another tenant

    error = fetch_error(backend)

    assert error.step == "login"
    assert "rejected the access token (HTTP 401" in error.detail
    assert "AZURE_TENANT_ID" in error.fix


def test_invalid_azure_token_credentials(
    vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "NoSuchCredential")

    error = fetch_error()

    assert error.step == "login"
    assert "nosuchcredential" in error.detail.lower()
    assert "managedidentitycredential" in error.detail.lower()  # the SDK lists valid values
    assert error.fix == "AZURE_TOKEN_CREDENTIALS"


# --- connect failures --------------------------------------------------------------------------


def test_unreachable_vault_is_a_connect_failure(
    vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://{LOOPBACK}:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_AZURE_KEY_VAULT_URL", url)

    error = fetch_error()

    assert error.step == "connect"
    assert error.detail == f"connection to Key Vault at {url} was refused"
    assert "MLFLOW_AZURE_KEY_VAULT_URL" in error.fix


#: The timeout a silent vault is given, and how long the whole fetch may take: generous (retries'
#: backoff, a busy machine), yet under the 10 s default, so a store that ignored the setting, or
#: waited on the SDK's own minutes-long defaults, still fails.
SILENT_TIMEOUT_SEC = 0.6
SILENT_BOUND_SEC = SILENT_TIMEOUT_SEC * 12


def test_a_silent_vault_is_bounded_by_the_timeout(
    vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    monkeypatch.setenv("MLFLOW_AZURE_KEY_VAULT_URL", f"https://{LOOPBACK}:{silent_port}")
    monkeypatch.setenv("MLFLOW_SECRETS_TIMEOUT_SEC", str(SILENT_TIMEOUT_SEC))

    started = time.monotonic()
    error = fetch_error()
    elapsed = time.monotonic() - started

    assert error.step == "connect"
    assert f"did not answer within {SILENT_TIMEOUT_SEC}s" in error.detail
    assert elapsed < SILENT_BOUND_SEC, f"{elapsed:.1f}s for a {SILENT_TIMEOUT_SEC}s timeout"


def test_untrusted_certificate_is_a_connect_failure(
    vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # does not know the fake's CA

    error = fetch_error()

    assert error.step == "connect"
    assert error.detail.startswith(f"TLS verification failed for Key Vault at {vault.url}")
    assert "REQUESTS_CA_BUNDLE" in error.fix


def test_challenge_resource_must_match_the_vault_domain_unless_disabled(
    vault: KeyVaultFake, monkeypatch: pytest.MonkeyPatch
) -> None:
    vault.set_secret(NAME, "x")
    monkeypatch.delenv("MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE")  # default: verify

    error = fetch_error()

    assert error.step == "connect"
    assert "vault.azure.net" in error.detail and "does not match" in error.detail
    assert "MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE=false" in error.fix
    assert vault.identity.token_requests == 0  # no token was obtained for a foreign resource


# --- through the whole plugin ------------------------------------------------------------------


def test_plugin_sends_the_bearer_token(
    vault: KeyVaultFake, target: RecordingServer, leak_check: LeakCheck
) -> None:
    value = secret_value()
    vault.set_secret(NAME, value)  # a plain string secret

    response = get_through_plugin(target, leak_check)

    assert response.status_code == 200
    assert target.requests[0].header("Authorization") == f"Bearer {value.strip()}"
    leak_check.assert_clean([value, *vault.identity.issued])


def test_plugin_sends_basic_credentials(
    vault: KeyVaultFake,
    target: RecordingServer,
    leak_check: LeakCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = secret_value()
    vault.set_secret(NAME, json.dumps({"username": "mlflow-bot", "password": value}))
    monkeypatch.setenv("MLFLOW_AZURE_AUTH_MODE", "basic")

    get_through_plugin(target, leak_check)

    encoded = base64.b64encode(f"mlflow-bot:{value.strip()}".encode()).decode()
    assert target.requests[0].header("Authorization") == f"Basic {encoded}"
    leak_check.assert_clean([value, encoded, *vault.identity.issued])


@pytest.mark.parametrize(
    ("fault", "step"),
    [
        ("not-found", "read"),
        ("forbidden", "read"),
        ("disabled", "read"),
        ("identity-failing", "login"),
        ("unreachable", "connect"),
        ("basic-mode-without-colon", "parse"),
        ("broken-json", "parse"),
    ],
)
def test_plugin_errors_never_show_the_secret(
    fault: str,
    step: str,
    vault: KeyVaultFake,
    target: RecordingServer,
    leak_check: LeakCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = secret_value()
    if fault == "broken-json":
        vault.set_secret(NAME, '{"token": ' + json.dumps(value))
    else:
        vault.set_secret(NAME, value.replace(":", ""))  # no user:pass shape
    if fault == "not-found":
        monkeypatch.setenv("MLFLOW_AZURE_SECRET_NAME", "missing")
    elif fault == "forbidden":
        vault.forbid(NAME)
    elif fault == "disabled":
        vault.disable(NAME)
    elif fault == "identity-failing":
        vault.identity.fail_with(400, {"error": "invalid_request", "error_description": "no"})
    elif fault == "unreachable":
        monkeypatch.setenv("MLFLOW_AZURE_KEY_VAULT_URL", f"https://{LOOPBACK}:{free_port()}")
    elif fault == "basic-mode-without-colon":
        monkeypatch.setenv("MLFLOW_AZURE_AUTH_MODE", "basic")

    with pytest.raises(BackendError) as info:
        get_through_plugin(target, leak_check)

    assert (info.value.backend, info.value.step) == ("azure-key-vault", step)
    assert target.requests == []  # never sent without the credential
    leak_check.assert_clean([value, value.replace(":", ""), *vault.identity.issued], info.value)


def test_end_to_end_mlflow_run_with_a_bearer_token_from_key_vault(
    mlflow_server: MlflowAuthServer,
    vault: KeyVaultFake,
    mlflow_run_check: MlflowRunCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    username = f"azure-user-{uuid.uuid4().hex[:8]}"
    mlflow_server.create_user(username, secrets.token_urlsafe(18))
    token = f"mlflow-api-{secrets.token_urlsafe(24)}"
    mlflow_server.set_tokens({token: username})
    vault.set_secret(NAME, json.dumps({"token": token + "\n"}))
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)  # restored after the test

    try:
        run = mlflow_run_check.log(mlflow_server.url, "azure")
    finally:
        mlflow_server.set_tokens({})

    mlflow_run_check.assert_visible_to_admin(mlflow_server, run, "azure", username)
    assert vault.secret_reads(NAME) == 1  # every MLflow request was served from the cache
