"""gcp-secret-manager store against a loopback HTTPS fake of the Secret Manager REST API, driven by
the real google-cloud-secret-manager client (REST transport, pointed at the fake with
MLFLOW_GCP_ENDPOINT) and real google-auth. See support/gcp_secret_manager_fake.py for the protocol.

Credentials. Most tests use a service-account key file made in the test and named by
GOOGLE_APPLICATION_CREDENTIALS: google-auth reads that variable on every ``google.auth.default()``
call, so each test gets its own key with no process-wide state. With a service-account key the
client library signs its own JWT (AIP-4111) and never calls the key's ``token_uri``; the fake
verifies that JWT against the key's public half, so a key it does not know is refused (401).
A token endpoint is therefore exercised through the metadata server (GKE workload identity,
Cloud Run, Compute Engine): a metadata fake reached through GCE_METADATA_HOST. google-auth reads
GCE_METADATA_HOST and NO_GCE_CHECK once, when it is imported, so those tests (and the "no
credentials at all" one) run the store in a fresh process with its environment set from the start,
exactly as a user's process would see it. No test can reach a real metadata server: both metadata
variables point at loopback ports, and CLOUDSDK_CONFIG at an empty directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import certifi
import pytest

import mlflow_secrets_auth
from mlflow_secrets_auth import values
from mlflow_secrets_auth.backends.base import CommonSettings
from mlflow_secrets_auth.backends.gcp import GcpSecretManagerStore
from mlflow_secrets_auth.credentials import parse_secret
from mlflow_secrets_auth.errors import BackendError
from mlflow_secrets_auth.testing import check_store

from support.azure_keyvault_fake import TlsFiles
from support.gcp_secret_manager_fake import (
    PROJECT,
    MetadataServerFake,
    SecretManagerFake,
    ServiceAccountKey,
    make_service_account_key,
)
from support.mlflow_server import MlflowAuthServer
from support.plugin_calls import get_through_plugin, secret_value
from support.ports import LOOPBACK, free_port
from support.recording_server import RecordingServer

if TYPE_CHECKING:  # fixtures' types, defined in this directory's conftest.py
    from conftest import MlflowRunCheck

    from support.leaks import LeakCheck

pytestmark = pytest.mark.integration

NAME = "mlflow-credential"
SECRET_PATH = f"projects/{PROJECT}/secrets/{NAME}"
_GOOGLE_PREFIXES = ("MLFLOW_GCP_", "GOOGLE_", "GCE_", "CLOUDSDK_", "GCLOUD_")


@dataclass
class Gcp:
    """The fakes and the credentials one test uses."""

    secrets: SecretManagerFake
    metadata: MetadataServerFake
    key: ServiceAccountKey
    tls: TlsFiles
    home: Path


@pytest.fixture(scope="session")
def gcp_servers(vault_tls: TlsFiles) -> Iterator[SecretManagerFake]:
    metadata = MetadataServerFake().start()
    fake = SecretManagerFake(vault_tls).start()
    fake.metadata = metadata
    try:
        yield fake
    finally:
        fake.stop()
        metadata.stop()


@pytest.fixture(scope="session")
def gcp_key(tmp_path_factory: pytest.TempPathFactory) -> ServiceAccountKey:
    """One service-account key for the session (making an RSA key takes a while)."""
    return make_service_account_key(tmp_path_factory.mktemp("gcp-keys"))


@pytest.fixture
def gcp(
    gcp_servers: SecretManagerFake,
    gcp_key: ServiceAccountKey,
    vault_tls: TlsFiles,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_env: None,
) -> Gcp:
    """An empty fake Secret Manager trusting a fresh service-account key named by
    GOOGLE_APPLICATION_CREDENTIALS; MLFLOW_GCP_SECRET_NAME points at NAME."""
    fake = gcp_servers
    assert fake.metadata is not None
    fake.reset()
    fake.metadata.refusal = None
    key = gcp_key
    fake.trust(key)
    for name in list(os.environ):
        if name.startswith(_GOOGLE_PREFIXES) or name == "NO_GCE_CHECK":
            monkeypatch.delenv(name)
    closed = f"{LOOPBACK}:{free_port()}"  # no metadata server: nothing listens there
    env = {
        "MLFLOW_SECRETS_AUTH_ENABLE": "gcp-secret-manager",
        "MLFLOW_GCP_ENDPOINT": fake.url,
        "MLFLOW_GCP_SECRET_NAME": SECRET_PATH,
        "GOOGLE_APPLICATION_CREDENTIALS": str(key.path),
        # CI points this at the system bundle; the fake's certificate is self-signed.
        "REQUESTS_CA_BUNDLE": str(vault_tls.cert_path),
        "CLOUDSDK_CONFIG": str(tmp_path / "gcloud"),  # no gcloud ADC file
        "GCE_METADATA_HOST": closed,
        "GCE_METADATA_IP": closed,
        "NO_GCE_CHECK": "true",  # google-auth compares with lower-case "true"
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Gcp(fake, fake.metadata, key, vault_tls, tmp_path)


def store_from_env(timeout_sec: float | None = None) -> GcpSecretManagerStore:
    """The store built from the current environment, as the plugin builds it."""
    timeout = timeout_sec or values.seconds(
        os.environ, "MLFLOW_SECRETS_TIMEOUT_SEC", 10.0, allow_zero=False
    )
    common = CommonSettings("gcp-secret-manager", "bearer", 300.0, timeout)
    return GcpSecretManagerStore(GcpSecretManagerStore.load_settings(os.environ, common))


def fetch_error(store: GcpSecretManagerStore | None = None) -> BackendError:
    store = store or store_from_env()
    try:
        with pytest.raises(BackendError) as info:
            store.fetch()
    finally:
        store.close()
    error = info.value
    assert error.backend == "gcp-secret-manager"
    assert str(error).startswith(f"gcp-secret-manager: {error.step} failed: ")
    return error


# --- reading -----------------------------------------------------------------------------------


def test_latest_version_with_a_service_account_key(gcp: Gcp) -> None:
    gcp.secrets.add_version(NAME, '{"token": "tok-old"}')
    gcp.secrets.add_version(NAME, '{"token": "tok-latest"}')
    store = store_from_env()
    assert store._client is None  # built on first fetch, not on construction

    fetched = store.fetch()
    store.close()

    assert fetched.payload == '{"token": "tok-latest"}'
    assert fetched.version == "2"
    assert fetched.location == f"{SECRET_PATH}/versions/2"
    assert parse_secret(fetched.payload, "bearer").authorization == "Bearer tok-latest"
    [request] = gcp.secrets.requests
    assert (request.path, request.authorized, request.status) == (
        f"/v1/{SECRET_PATH}/versions/latest:access",
        True,
        200,
    )
    [bearer] = gcp.secrets.bearers  # a JWT the client signed with the key
    assert bearer.count(".") == 2


def test_pinned_version(gcp: Gcp, monkeypatch: pytest.MonkeyPatch) -> None:
    gcp.secrets.add_version(NAME, "pinned-token\n")
    gcp.secrets.add_version(NAME, "newer-token")
    monkeypatch.setenv("MLFLOW_GCP_SECRET_NAME", f"{SECRET_PATH}/versions/1")
    store = store_from_env()

    fetched = store.fetch()
    store.close()

    assert (fetched.payload, fetched.version) == ("pinned-token\n", "1")
    assert parse_secret(fetched.payload, "bearer").authorization == "Bearer pinned-token"
    assert store.settings.identity.endswith("/versions/1")  # its own cache entry
    assert gcp.secrets.requests[0].path == f"/v1/{SECRET_PATH}/versions/1:access"


def test_short_name_takes_the_project_from_mlflow_gcp_project(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcp.secrets.add_version(NAME, "short-name-token")
    monkeypatch.setenv("MLFLOW_GCP_SECRET_NAME", NAME)
    monkeypatch.setenv("MLFLOW_GCP_PROJECT", PROJECT)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "some-other-project")  # the fallback only

    store = store_from_env()
    fetched = store.fetch()
    store.close()

    assert fetched.payload == "short-name-token"
    assert gcp.secrets.reads(NAME) == 1


def test_binary_payload_is_returned_as_bytes(gcp: Gcp) -> None:
    gcp.secrets.add_version(NAME, b"\xff\xfe not utf-8")
    store = store_from_env()

    fetched = store.fetch()
    store.close()

    assert fetched.payload == b"\xff\xfe not utf-8"


def test_client_is_reused_and_rotation_is_seen(gcp: Gcp) -> None:
    gcp.secrets.add_version(NAME, "before-rotation")
    store = store_from_env()
    first = store.fetch()
    client = store._client

    gcp.secrets.add_version(NAME, "after-rotation")
    second = store.fetch()
    reused = store._client is client
    store.close()

    assert (first.payload, second.payload) == ("before-rotation", "after-rotation")
    assert (first.version, second.version) == ("1", "2")
    assert reused and store._client is None  # one client, closed now
    assert len(set(gcp.secrets.bearers)) == 1  # the signed JWT was reused too


def test_transient_unavailability_is_retried(gcp: Gcp) -> None:
    gcp.secrets.add_version(NAME, "after-a-hiccup")
    gcp.secrets.unavailable(2)
    store = store_from_env()

    fetched = store.fetch()
    store.close()

    assert fetched.payload == "after-a-hiccup"
    assert [r.status for r in gcp.secrets.requests] == [503, 503, 200]


# --- read failures -----------------------------------------------------------------------------


def test_secret_not_found(gcp: Gcp) -> None:
    error = fetch_error()

    assert error.step == "read"
    assert error.detail.startswith(f"Secret not found: {SECRET_PATH}/versions/latest at ")
    assert "NOT_FOUND" in error.detail
    assert "MLFLOW_GCP_SECRET_NAME" in error.fix and "MLFLOW_GCP_PROJECT" in error.fix
    assert f"gcloud secrets versions list {NAME} --project {PROJECT}" in error.fix


def test_permission_denied_names_the_permission_role_and_identity(gcp: Gcp) -> None:
    gcp.secrets.add_version(NAME, "guarded")
    gcp.secrets.deny(NAME)

    error = fetch_error()

    assert error.step == "read"
    assert "permission denied" in error.detail and "PERMISSION_DENIED" in error.detail
    assert gcp.key.email in error.detail  # which identity was refused
    assert "secretmanager.versions.access" in error.fix
    assert "roles/secretmanager.secretAccessor" in error.fix
    assert f"--member=serviceAccount:{gcp.key.email}" in error.fix


@pytest.mark.parametrize("state", ["DISABLED", "DESTROYED"])
def test_disabled_or_destroyed_version(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch, state: str
) -> None:
    gcp.secrets.add_version(NAME, "off")
    gcp.secrets.add_version(NAME, "current")
    gcp.secrets.set_state(NAME, "1", state)
    monkeypatch.setenv("MLFLOW_GCP_SECRET_NAME", f"{SECRET_PATH}/versions/1")

    error = fetch_error()

    assert error.step == "read"
    assert f"version 1 of {SECRET_PATH} is {state.lower()}" in error.detail
    assert "FAILED_PRECONDITION" in error.detail
    if state == "DISABLED":
        assert f"gcloud secrets versions enable 1 --secret {NAME}" in error.fix
    else:
        assert "cannot be restored" in error.fix
    assert "MLFLOW_GCP_SECRET_NAME" in error.fix


def test_latest_disabled_version_says_latest_is_the_newest(gcp: Gcp) -> None:
    gcp.secrets.add_version(NAME, "older")
    gcp.secrets.add_version(NAME, "newest")
    gcp.secrets.set_state(NAME, "2", "DISABLED")

    error = fetch_error()

    assert f"version 2 of {SECRET_PATH} is disabled" in error.detail
    assert "gcloud secrets versions enable 2 " in error.fix
    assert "latest names the newest version" in error.fix


def test_checksum_mismatch_is_an_error(gcp: Gcp, leak_check: LeakCheck) -> None:
    value = secret_value()
    gcp.secrets.add_version(NAME, value)
    gcp.secrets.corrupt(NAME)
    leak_check.begin()

    error = fetch_error()

    assert error.step == "read"
    assert "failed its CRC32C check" in error.detail
    leak_check.assert_clean([value], error)


def test_unavailable_beyond_the_time_bound(gcp: Gcp, monkeypatch: pytest.MonkeyPatch) -> None:
    gcp.secrets.add_version(NAME, "x")
    gcp.secrets.unavailable(10_000)
    monkeypatch.setenv("MLFLOW_SECRETS_TIMEOUT_SEC", "0.8")

    error = fetch_error()

    assert error.step == "read"
    assert "stayed busy or unavailable" in error.detail and "UNAVAILABLE" in error.detail
    assert "retried for 0.8s" in error.detail
    assert len(gcp.secrets.requests) >= 2


# --- login failures ----------------------------------------------------------------------------


def test_key_the_service_does_not_accept_is_a_login_failure(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    gcp.secrets.add_version(NAME, "x")
    unknown = make_service_account_key(gcp.home / "unknown")  # e.g. a deleted key
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(unknown.path))

    error = fetch_error()

    assert error.step == "login"
    assert "rejected the access token" in error.detail and unknown.email in error.detail
    assert "UNAUTHENTICATED" in error.detail
    assert "GOOGLE_APPLICATION_CREDENTIALS" in error.fix
    assert gcp.secrets.reads(NAME) == 0


def test_missing_key_file_is_a_login_failure(gcp: Gcp, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = gcp.home / "no-such-key.json"
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(missing))

    error = fetch_error()

    assert error.step == "login"
    assert error.detail.startswith("the Application Default Credentials could not be loaded")
    assert str(missing) in error.detail
    assert error.fix.startswith("GOOGLE_APPLICATION_CREDENTIALS")
    assert gcp.secrets.requests == []


# --- connect failures --------------------------------------------------------------------------


def test_unreachable_endpoint_is_a_connect_failure(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"https://{LOOPBACK}:{free_port()}"  # nothing listens there
    monkeypatch.setenv("MLFLOW_GCP_ENDPOINT", url)

    error = fetch_error()

    assert error.step == "connect"
    assert error.detail == f"connection to Secret Manager at {url} was refused"
    assert "MLFLOW_GCP_ENDPOINT" in error.fix


def test_untrusted_certificate_is_a_connect_failure(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # does not know the fake's CA

    error = fetch_error()

    assert error.step == "connect"
    assert error.detail == f"TLS verification failed for Secret Manager at {gcp.secrets.url}"
    assert "REQUESTS_CA_BUNDLE" in error.fix


def test_a_silent_endpoint_is_bounded_by_the_timeout(
    gcp: Gcp, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    monkeypatch.setenv("MLFLOW_GCP_ENDPOINT", f"https://{LOOPBACK}:{silent_port}")
    monkeypatch.setenv("MLFLOW_SECRETS_TIMEOUT_SEC", "0.6")

    error = fetch_error()

    assert error.step == "connect"
    assert "did not answer within 0.6s" in error.detail


# --- in a fresh process: the metadata server, and no credentials at all ------------------------

_CHILD = """
import hashlib, json, os
from mlflow_secrets_auth.backends.base import CommonSettings
from mlflow_secrets_auth.backends.gcp import GcpSecretManagerStore
from mlflow_secrets_auth.errors import BackendError
from mlflow_secrets_auth.testing import check_store

common = CommonSettings("gcp-secret-manager", "bearer", 300.0, 5.0)
store = GcpSecretManagerStore(GcpSecretManagerStore.load_settings(os.environ, common))
try:
    fetched = store.fetch()
    data = fetched.payload.encode() if isinstance(fetched.payload, str) else fetched.payload
    result = {"sha256": hashlib.sha256(data).hexdigest(), "version": fetched.version}
except BackendError as error:
    result = {"step": error.step, "detail": error.detail, "fix": error.fix}
finally:
    store.close()
print(json.dumps(result))
"""


def run_in_fresh_process(gcp: Gcp, **env: str) -> dict[str, str]:
    """Run the store in a new interpreter whose environment is the current one's Google and
    MLflow variables plus ``env`` ("" unsets): google-auth reads some of them only at import."""
    package_root = Path(mlflow_secrets_auth.__file__).resolve().parents[1]
    child_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(gcp.home),
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(package_root), os.environ.get("PYTHONPATH", "")) if p
        ),
    }
    for name, value in os.environ.items():
        if name.startswith(("MLFLOW_", *_GOOGLE_PREFIXES)) or name in (
            "NO_GCE_CHECK",
            "REQUESTS_CA_BUNDLE",
            "NO_PROXY",
            "no_proxy",
        ):
            child_env[name] = value
    child_env.update(env)
    child_env = {k: v for k, v in child_env.items() if v != ""}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD], env=child_env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result: dict[str, str] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_metadata_server_credentials(gcp: Gcp) -> None:
    """GKE workload identity / Cloud Run / Compute Engine: the token comes from the metadata
    server, whose service account the store names."""
    value = "token-via-workload-identity"
    gcp.secrets.add_version(NAME, value)

    result = run_in_fresh_process(
        gcp, GOOGLE_APPLICATION_CREDENTIALS="", NO_GCE_CHECK="", **gcp.metadata.env()
    )

    assert result == {"sha256": hashlib.sha256(value.encode()).hexdigest(), "version": "1"}
    assert gcp.metadata.token_requests == 1
    assert gcp.secrets.bearers == gcp.metadata.issued  # the metadata token was sent


def test_metadata_server_refusing_tokens_is_a_login_failure(gcp: Gcp) -> None:
    gcp.secrets.add_version(NAME, "x")
    gcp.metadata.refuse_tokens(
        403,
        "Unable to generate access token; IAM returned 403 Forbidden: Permission "
        "'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).\n"
        "This error could be caused by a missing IAM policy binding on the target IAM service "
        "account.\nFor more information, refer to the Workload Identity documentation.",
    )

    result = run_in_fresh_process(
        gcp, GOOGLE_APPLICATION_CREDENTIALS="", NO_GCE_CHECK="", **gcp.metadata.env()
    )

    assert result["step"] == "login"
    assert result["detail"].startswith("the metadata server refused to issue an access token")
    assert gcp.metadata.email in result["detail"]
    assert "HTTP 403: Unable to generate access token" in result["detail"]
    assert "For more information" not in result["detail"]  # a summary, not the whole body
    assert "iam.gke.io/gcp-service-account" in result["fix"]
    assert gcp.secrets.requests == []


def test_no_application_default_credentials(gcp: Gcp) -> None:
    """No key file, no gcloud login, no metadata server (NO_GCE_CHECK, and both metadata
    variables at a closed loopback port)."""
    result = run_in_fresh_process(gcp, GOOGLE_APPLICATION_CREDENTIALS="")

    assert result["step"] == "login"
    assert result["detail"].startswith("no Application Default Credentials were found: ")
    assert "GOOGLE_APPLICATION_CREDENTIALS is not set" in result["detail"]
    for remedy in (
        "GOOGLE_APPLICATION_CREDENTIALS",
        "gcloud auth application-default login",
        "workload identity",
    ):
        assert remedy in result["fix"]
    assert gcp.secrets.requests == []


# --- through the whole plugin ------------------------------------------------------------------


def test_plugin_sends_the_bearer_token_and_leaks_nothing_at_debug(
    gcp: Gcp,
    target: RecordingServer,
    leak_check: LeakCheck,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = secret_value()
    gcp.secrets.add_version(NAME, value)  # a plain string secret
    # Let google-auth's and the client library's own DEBUG records reach the capture too.
    google_logger = logging.getLogger("google")
    monkeypatch.setattr(google_logger, "propagate", True)
    monkeypatch.setattr(google_logger, "level", logging.DEBUG)

    response = get_through_plugin(target, leak_check)

    assert response.status_code == 200
    assert target.requests[0].header("Authorization") == f"Bearer {value.strip()}"
    private_key_body = "".join(gcp.key.private_key_pem.strip().splitlines()[1:-1])
    secrets_seen = [value, *gcp.secrets.bearers, private_key_body]
    leak_check.assert_clean(secrets_seen)
    assert gcp.secrets.bearers, "no bearer was checked"
    encoded = base64.b64encode(value.encode()).decode()
    for record in caplog.records:  # structured extras (httpRequest, httpResponse)
        text = repr(vars(record))
        assert not any(s in text for s in [*secrets_seen, value.strip(), encoded])


@pytest.mark.parametrize(
    ("fault", "step"),
    [
        ("not-found", "read"),
        ("denied", "read"),
        ("disabled", "read"),
        ("corrupt", "read"),
        ("unknown-key", "login"),
        ("unreachable", "connect"),
        ("basic-mode-without-colon", "parse"),
    ],
)
def test_plugin_errors_never_show_the_secret(
    fault: str,
    step: str,
    gcp: Gcp,
    target: RecordingServer,
    leak_check: LeakCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = secret_value().replace(":", "")  # no user:pass shape
    gcp.secrets.add_version(NAME, value)
    if fault == "not-found":
        monkeypatch.setenv("MLFLOW_GCP_SECRET_NAME", f"projects/{PROJECT}/secrets/missing")
    elif fault == "denied":
        gcp.secrets.deny(NAME)
    elif fault == "disabled":
        gcp.secrets.set_state(NAME, "1", "DISABLED")
    elif fault == "corrupt":
        gcp.secrets.corrupt(NAME)
    elif fault == "unknown-key":
        monkeypatch.setenv(
            "GOOGLE_APPLICATION_CREDENTIALS", str(make_service_account_key(gcp.home / "k2").path)
        )
    elif fault == "unreachable":
        monkeypatch.setenv("MLFLOW_GCP_ENDPOINT", f"https://{LOOPBACK}:{free_port()}")
    elif fault == "basic-mode-without-colon":
        monkeypatch.setenv("MLFLOW_GCP_AUTH_MODE", "basic")

    with pytest.raises(BackendError) as info:
        get_through_plugin(target, leak_check)

    assert (info.value.backend, info.value.step) == ("gcp-secret-manager", step)
    assert target.requests == []  # never sent without the credential
    leak_check.assert_clean([value, *gcp.secrets.bearers], info.value)


def test_end_to_end_mlflow_run_with_a_token_from_secret_manager(
    mlflow_server: MlflowAuthServer,
    gcp: Gcp,
    mlflow_run_check: MlflowRunCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    username = f"gcp-user-{uuid.uuid4().hex[:8]}"
    mlflow_server.create_user(username, secrets.token_urlsafe(18))
    token = f"mlflow-api-{secrets.token_urlsafe(24)}"
    mlflow_server.set_tokens({token: username})
    gcp.secrets.add_version(NAME, json.dumps({"token": token + "\n"}))
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)  # restored after the test

    try:
        run = mlflow_run_check.log(mlflow_server.url, "gcp")
    finally:
        mlflow_server.set_tokens({})

    mlflow_run_check.assert_visible_to_admin(mlflow_server, run, "gcp", username)
    assert gcp.secrets.reads(NAME) == 1  # every MLflow request was served from the cache


def test_contract_kit(gcp: Gcp, silent_port: int) -> None:
    token = f"kit-{secrets.token_urlsafe(16)}"
    gcp.secrets.add_version(NAME, json.dumps({"token": token}))
    env = dict(os.environ)  # google-auth reads its own variables from the process environment

    check_store(
        GcpSecretManagerStore,
        env,
        token,
        failing_env={**env, "MLFLOW_GCP_SECRET_NAME": f"projects/{PROJECT}/secrets/missing"},
        hanging_env={**env, "MLFLOW_GCP_ENDPOINT": f"https://{LOOPBACK}:{silent_port}"},
    )
