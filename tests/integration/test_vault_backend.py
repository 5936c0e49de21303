"""The Vault backend through the whole plugin, against a real OpenBao server.

Each test applies ``mlflow_secrets_auth.get_auth()`` to a real request sent to a loopback
recording server, so what is asserted is the header that actually went out.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

import mlflow_secrets_auth
from mlflow_secrets_auth.errors import BackendError

from support.counting_proxy import CountingProxy
from support.kubernetes import ServiceAccount, enable_kubernetes_auth
from support.openbao import OpenBaoServer
from support.ports import free_port
from support.recording_server import RecordingServer

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sink(recording_server: Callable[[], RecordingServer]) -> RecordingServer:
    return recording_server()


def sent_authorization(sink: RecordingServer) -> str | None:
    requests.get(sink.url + "/api", auth=mlflow_secrets_auth.get_auth(), timeout=10)
    return sink.requests[-1].header("authorization")


@pytest.mark.parametrize(
    ("mount", "version", "configured_path"),
    [
        ("secret", 2, "secret/{path}"),
        ("secret", 2, "secret/data/{path}"),  # KV v2 API form accepted too
        ("kv-ml", 2, "kv-ml/{path}"),
        ("kv1", 1, "kv1/{path}"),
    ],
)
def test_kv_mounts_and_versions_are_detected(
    openbao: OpenBaoServer,
    vault_env: Callable[..., None],
    sink: RecordingServer,
    mount: str,
    version: int,
    configured_path: str,
) -> None:
    openbao.enable_kv(mount, version)
    path = unique("team/mlflow")
    token = unique("tok")
    openbao.write_secret(mount, path, {"token": token + "\n"}, version=version)
    vault_env(configured_path.format(path=path))
    assert sent_authorization(sink) == f"Bearer {token}"


def test_basic_mode_from_username_and_password(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    path = unique("basic")
    openbao.write_secret("secret", path, {"username": "alice", "password": "pw:with@chars/%"})
    vault_env(f"secret/{path}", MLFLOW_VAULT_AUTH_MODE="basic")
    import base64

    expected = base64.b64encode(b"alice:pw:with@chars/%").decode()
    assert sent_authorization(sink) == f"Basic {expected}"


def _approle(
    openbao: OpenBaoServer, path: str, mount: str = "approle", ttl: str = "1h"
) -> tuple[str, str]:
    policy = unique("read")
    openbao.create_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
    openbao.enable_approle(mount)
    return openbao.create_approle(unique("role"), [policy], mount=mount, token_ttl=ttl)


def configure_approle(
    openbao: OpenBaoServer,
    vault_env: Callable[..., None],
    token: str,
    *,
    mount: str = "approle",
    ttl: str = "1h",
    **extra: str,
) -> str:
    """Store ``token`` and point the plugin at it through an AppRole login (no VAULT_TOKEN);
    returns the secret's path below the ``secret/`` mount."""
    path = unique("approle")
    openbao.write_secret("secret", path, {"token": token})
    role_id, secret_id = _approle(openbao, path, mount=mount, ttl=ttl)
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN="",
        VAULT_ROLE_ID=role_id,
        VAULT_SECRET_ID=secret_id,
        MLFLOW_VAULT_APPROLE_MOUNT=mount,
        **extra,
    )
    return path


def test_approle_login_with_custom_mount(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    configure_approle(openbao, vault_env, "approle-token", mount="ml-approle")
    assert sent_authorization(sink) == "Bearer approle-token"


def test_revoked_login_token_triggers_one_new_login(
    openbao: OpenBaoServer,
    vault_env: Callable[..., None],
    sink: RecordingServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_approle(openbao, vault_env, "still-works", MLFLOW_VAULT_TTL_SEC="0.1")
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    assert sent_authorization(sink) == "Bearer still-works"
    from mlflow_secrets_auth import runtime

    backend = runtime.current_auth().source.backend  # type: ignore[union-attr]
    hvac_client = backend.client._client  # the store's hvac client and its login token
    openbao.request("POST", "auth/token/revoke", json={"token": hvac_client.token})
    time.sleep(0.15)
    assert sent_authorization(sink) == "Bearer still-works"
    assert sum("Vault login succeeded" in r.getMessage() for r in caplog.records) == 2


def test_missing_secret_with_a_login_token_logs_in_only_once(
    openbao: OpenBaoServer,
    vault_env: Callable[..., None],
    sink: RecordingServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Logging in again helps with a revoked token (403), never with a missing secret (404)."""
    path = configure_approle(openbao, vault_env, "soon-gone")
    openbao.delete_secret("secret", path)
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    error = failure(sink)
    assert error.step == "read"
    assert "not found" in error.detail
    assert sum("Vault login succeeded" in r.getMessage() for r in caplog.records) == 1


def test_namespace(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    namespace = unique("team")
    openbao.create_namespace(namespace)
    openbao.enable_kv("kv-ns", 2, namespace=namespace)
    path = unique("auth")
    openbao.write_secret("kv-ns", path, {"token": "namespaced"}, namespace=namespace)
    vault_env(f"kv-ns/{path}", VAULT_NAMESPACE=namespace)
    assert sent_authorization(sink) == "Bearer namespaced"


# -- failures: each names the backend, the step and what to check ------------------------------


def failure(sink: RecordingServer) -> BackendError:
    with pytest.raises(BackendError) as info:
        requests.get(sink.url + "/api", auth=mlflow_secrets_auth.get_auth(), timeout=10)
    assert sink.requests == []  # fail closed: nothing was sent unauthenticated
    return info.value


def assert_connect_failure(sink: RecordingServer, says: str, fix_names: str) -> None:
    error = failure(sink)
    assert error.step == "connect"
    assert says in error.detail
    assert fix_names in error.fix


def test_secret_not_found(vault_env: Callable[..., None], sink: RecordingServer) -> None:
    vault_env("secret/does/not/exist")
    error = failure(sink)
    assert (error.backend, error.step) == ("vault", "read")
    assert "secret/does/not/exist" in str(error)
    assert "MLFLOW_VAULT_SECRET_PATH" in str(error)


def test_token_without_permission(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    path = unique("locked")
    openbao.write_secret("secret", path, {"token": "x"})
    openbao.create_policy("nothing", 'path "secret/data/other" { capabilities = ["read"] }')
    vault_env(f"secret/{path}", VAULT_TOKEN=openbao.create_token(["nothing"]))
    error = failure(sink)
    assert error.step == "read"
    assert "permission denied" in str(error)
    assert "policy" in error.fix


def test_bad_approle_secret_is_a_login_failure(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    path = unique("badlogin")
    role_id, _ = _approle(openbao, path)
    vault_env(
        f"secret/{path}", VAULT_TOKEN="", VAULT_ROLE_ID=role_id, VAULT_SECRET_ID="wrong-secret-id"
    )
    error = failure(sink)
    assert error.step == "login"
    assert "VAULT_SECRET_ID" in error.fix
    assert "wrong-secret-id" not in str(error)


def test_unreachable_vault_is_a_connect_failure(
    vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    vault_env("secret/x", VAULT_ADDR=f"http://127.0.0.1:{free_port()}")
    assert_connect_failure(sink, says="refused", fix_names="VAULT_ADDR")


def test_tls_to_a_plain_http_server_is_a_connect_failure(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    vault_env("secret/x", VAULT_ADDR=openbao.addr.replace("http://", "https://"))
    assert_connect_failure(sink, says="TLS", fix_names="VAULT_ADDR")


def test_secret_with_wrong_shape_is_a_parse_failure(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    path = unique("shape")
    openbao.write_secret("secret", path, {"api_key": "value-not-shown"})
    vault_env(f"secret/{path}")
    error = failure(sink)
    assert error.step == "parse"
    assert "api_key" in str(error)
    assert "value-not-shown" not in str(error)


def test_mode_mismatch_is_a_parse_failure(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    path = unique("mismatch")
    openbao.write_secret("secret", path, {"username": "u", "password": "hidden-password"})
    vault_env(f"secret/{path}", MLFLOW_VAULT_AUTH_MODE="bearer")  # strict: auto would fit
    error = failure(sink)
    assert error.step == "parse"
    assert "MLFLOW_VAULT_AUTH_MODE" in str(error)
    assert "fits basic mode" in str(error)
    assert "hidden-password" not in str(error)


def test_kubernetes_login_with_custom_mount(
    openbao: OpenBaoServer,
    vault_env: Callable[..., None],
    recording_server: Callable[[], RecordingServer],
    tmp_path: Path,
) -> None:
    sink, kubernetes_api = recording_server(), recording_server()
    path = unique("k8s")
    openbao.write_secret("secret", path, {"token": "from-kubernetes-login"})
    policy = unique("k8s-read")
    openbao.create_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
    account = ServiceAccount("ml", "trainer")
    enable_kubernetes_auth(
        openbao, kubernetes_api, account, mount="k8s-ml", role="trainer", policies=[policy]
    )
    token_file = tmp_path / "token"
    token_file.write_text(account.jwt + "\n")
    vault_env(
        f"secret/{path}",
        VAULT_TOKEN="",
        MLFLOW_VAULT_K8S_ROLE="trainer",
        MLFLOW_VAULT_K8S_TOKEN_PATH=str(token_file),
        MLFLOW_VAULT_K8S_MOUNT="k8s-ml",
    )
    assert sent_authorization(sink) == "Bearer from-kubernetes-login"
    reviews = kubernetes_api.requests_to("/apis/authentication.k8s.io/v1/tokenreviews")
    assert len(reviews) == 1
    assert json.loads(reviews[0].body)["spec"]["token"] == account.jwt


def test_kubernetes_login_without_token_file(
    vault_env: Callable[..., None], sink: RecordingServer, tmp_path: Path
) -> None:
    vault_env(
        "secret/x",
        VAULT_TOKEN="",
        MLFLOW_VAULT_K8S_ROLE="trainer",
        MLFLOW_VAULT_K8S_TOKEN_PATH=str(tmp_path / "missing"),
    )
    error = failure(sink)
    assert error.step == "login"
    assert "MLFLOW_VAULT_K8S_TOKEN_PATH" in error.fix


# -- resilience: refresh ahead, stale-if-error (SPEC §6) --------------------------------------


def test_store_outage_serves_last_good_value_then_fails_closed(
    openbao: OpenBaoServer,
    vault_env: Callable[..., None],
    sink: RecordingServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = unique("outage")
    openbao.write_secret("secret", path, {"token": "last-good"})
    proxy = CountingProxy(openbao.addr).start()
    try:
        vault_env(
            f"secret/{path}",
            VAULT_ADDR=proxy.url,
            MLFLOW_VAULT_TTL_SEC="0.3",
            MLFLOW_SECRETS_MAX_STALE_SEC="1.5",
        )
        assert sent_authorization(sink) == "Bearer last-good"
    finally:
        proxy.stop()  # the secret store goes away
    time.sleep(0.4)  # the cached value has expired
    assert sent_authorization(sink) == "Bearer last-good"  # served stale, with a warning
    assert "still using the cached credential" in caplog.text
    time.sleep(1.5)  # past expiry + MLFLOW_SECRETS_MAX_STALE_SEC
    before = len(sink.requests)
    with pytest.raises(BackendError) as info:
        requests.get(sink.url, auth=mlflow_secrets_auth.get_auth(), timeout=10)
    assert info.value.step == "connect"
    assert len(sink.requests) == before  # nothing sent without a credential


def test_refresh_ahead_picks_up_a_rotated_secret_without_waiting(
    openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    path = unique("ahead")
    openbao.write_secret("secret", path, {"token": "before"})
    vault_env(f"secret/{path}", MLFLOW_VAULT_TTL_SEC="1")
    assert sent_authorization(sink) == "Bearer before"
    openbao.write_secret("secret", path, {"token": "after"})
    time.sleep(0.85)  # past 80% of the TTL, before expiry
    assert sent_authorization(sink) == "Bearer before"  # served at once; refresh in background
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sent_authorization(sink) != "Bearer after":
        time.sleep(0.02)
    assert sink.requests[-1].header("authorization") == "Bearer after"


def test_cache_clear_command_reaches_a_running_process(
    openbao: OpenBaoServer,
    vault_env: Callable[..., None],
    sink: RecordingServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_CACHE_DIR", str(tmp_path / "marker"))
    path = unique("clear")
    openbao.write_secret("secret", path, {"token": "cached-one"})
    vault_env(f"secret/{path}")
    assert sent_authorization(sink) == "Bearer cached-one"
    openbao.write_secret("secret", path, {"token": "rotated-one"})
    time.sleep(0.15)
    assert sent_authorization(sink) == "Bearer cached-one"  # still cached (TTL 300 s)
    cli = Path(sys.executable).with_name("mlflow-secrets-auth")
    done = subprocess.run([str(cli), "cache", "clear"], capture_output=True, text=True, check=True)
    assert "rotated-one" not in done.stdout + done.stderr
    time.sleep(0.15)  # the marker is looked at no more than every 0.1 s
    assert sent_authorization(sink) == "Bearer rotated-one"


# -- TLS: VAULT_CACERT and VAULT_SKIP_VERIFY ---------------------------------------------------


@pytest.fixture(scope="module")
def tls_openbao(openbao: OpenBaoServer) -> Iterator[OpenBaoServer]:
    """A second OpenBao serving HTTPS with its own generated CA (skipped like `openbao`)."""
    with OpenBaoServer(tls=True) as server:
        server.write_secret("secret", "tls/auth", {"token": "over-tls"})
        yield server


def test_vault_cacert_trusts_a_private_ca(
    tls_openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    vault_env(
        "secret/tls/auth",
        VAULT_ADDR=tls_openbao.addr,
        VAULT_TOKEN=tls_openbao.root_token,
        VAULT_CACERT=str(tls_openbao.ca_cert),
    )
    assert sent_authorization(sink) == "Bearer over-tls"


def test_untrusted_vault_certificate_is_a_tls_connect_failure(
    tls_openbao: OpenBaoServer,
    vault_env: Callable[..., None],
    sink: RecordingServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # as CI sets it: public CAs only
    vault_env("secret/tls/auth", VAULT_ADDR=tls_openbao.addr, VAULT_TOKEN=tls_openbao.root_token)
    assert_connect_failure(sink, says="TLS", fix_names="VAULT_CACERT")


def test_vault_skip_verify(
    tls_openbao: OpenBaoServer, vault_env: Callable[..., None], sink: RecordingServer
) -> None:
    vault_env(
        "secret/tls/auth",
        VAULT_ADDR=tls_openbao.addr,
        VAULT_TOKEN=tls_openbao.root_token,
        VAULT_SKIP_VERIFY="true",
    )
    from urllib3.exceptions import InsecureRequestWarning

    with pytest.warns(InsecureRequestWarning):  # the user is told verification is off
        assert sent_authorization(sink) == "Bearer over-tls"
