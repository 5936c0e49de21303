"""Smoke tests of the test infrastructure itself, against the real binaries.

If these fail, the integration tests of the library cannot be trusted either way: they prove
the fixtures start OpenBao and MLflow correctly, seed what the helpers claim, enforce the
authentication the library's tests rely on, and bind nothing but 127.0.0.1.
"""

from __future__ import annotations

import base64
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from support.mlflow_server import MlflowAuthServer
from support.openbao import SKIP_PREFIX, OpenBaoServer, openbao_unavailable_reason
from support.ports import ServerProcess, ServerStartError, free_port, free_port_pair
from support.recording_server import RecordingServer

pytestmark = pytest.mark.integration

SEARCH = "/api/2.0/mlflow/experiments/search?max_results=1"


@pytest.fixture
def http() -> Iterator[requests.Session]:
    """A requests session that ignores proxy settings from the environment."""
    session = requests.Session()
    session.trust_env = False
    yield session
    session.close()


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _listening_addresses(port: int) -> set[str]:
    """Local IPv4/IPv6 addresses with a LISTEN socket on `port`, from /proc/net (Linux)."""
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state = fields[1], fields[3]
            addr_hex, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                found.add(addr_hex)
    return found


# --------------------------------------------------------------------------- OpenBao


def _vault_get(
    http: requests.Session,
    bao: OpenBaoServer,
    path: str,
    token: str,
    namespace: str | None = None,
) -> requests.Response:
    headers = {"X-Vault-Token": token}
    if namespace:
        headers["X-Vault-Namespace"] = namespace
    return http.get(f"{bao.addr}/v1/{path}", headers=headers, timeout=10)


def test_openbao_kv2_at_default_secret_mount(
    openbao: OpenBaoServer, http: requests.Session
) -> None:
    path = _unique("app")
    openbao.enable_kv("secret", 2)  # already there in -dev mode: must be a no-op
    openbao.write_secret("secret", path, {"username": "u1", "password": "p1"})
    openbao.write_secret("secret", path, {"username": "u1", "password": "p2"})
    policy = _unique("read-secret")
    openbao.create_policy(policy, f'path "secret/data/{path}" {{ capabilities = ["read"] }}')
    token = openbao.create_token([policy], ttl="5m")

    resp = _vault_get(http, openbao, f"secret/data/{path}", token)
    assert resp.status_code == 200
    body = resp.json()["data"]
    assert body["data"] == {"username": "u1", "password": "p2"}
    assert body["metadata"]["version"] == 2
    # The policy grants exactly one path.
    assert _vault_get(http, openbao, "secret/data/other", token).status_code == 403


def test_openbao_kv2_at_custom_mount(openbao: OpenBaoServer, http: requests.Session) -> None:
    openbao.enable_kv("kv-ml", 2)
    openbao.enable_kv("kv-ml", 2)  # idempotent for tests sharing the session server
    path = _unique("team/mlflow")
    openbao.write_secret("kv-ml", path, {"token": "t-1"})
    resp = _vault_get(http, openbao, f"kv-ml/data/{path}", openbao.root_token)
    assert resp.status_code == 200
    assert resp.json()["data"]["data"] == {"token": "t-1"}


def test_openbao_kv1(openbao: OpenBaoServer, http: requests.Session) -> None:
    openbao.enable_kv("kv1", 1)
    path = _unique("legacy")
    openbao.write_secret("kv1", path, {"username": "old", "password": "style"}, version=1)
    resp = _vault_get(http, openbao, f"kv1/{path}", openbao.root_token)
    assert resp.status_code == 200
    assert resp.json()["data"] == {"username": "old", "password": "style"}
    assert openbao.read_secret("kv1", path, version=1) == {"username": "old", "password": "style"}


def test_openbao_approle_login_with_plain_requests(
    openbao: OpenBaoServer, http: requests.Session
) -> None:
    openbao.enable_kv("kv-ml", 2)
    path = _unique("approle")
    openbao.write_secret("kv-ml", path, {"token": "from-approle"})
    policy = _unique("approle-read")
    openbao.create_policy(policy, f'path "kv-ml/data/{path}" {{ capabilities = ["read"] }}')
    openbao.enable_approle()
    role_id, secret_id = openbao.create_approle(_unique("role"), [policy], token_ttl="2m")

    login = http.post(
        f"{openbao.addr}/v1/auth/approle/login",
        json={"role_id": role_id, "secret_id": secret_id},
        timeout=10,
    )
    assert login.status_code == 200
    auth = login.json()["auth"]
    assert policy in auth["policies"]
    assert 0 < auth["lease_duration"] <= 120
    resp = _vault_get(http, openbao, f"kv-ml/data/{path}", auth["client_token"])
    assert resp.json()["data"]["data"] == {"token": "from-approle"}

    bad = http.post(
        f"{openbao.addr}/v1/auth/approle/login",
        json={"role_id": role_id, "secret_id": "wrong"},
        timeout=10,
    )
    assert bad.status_code == 400


def test_openbao_namespace(openbao: OpenBaoServer, http: requests.Session) -> None:
    ns = _unique("team")
    openbao.create_namespace(ns)
    openbao.create_namespace(ns)  # a no-op the second time
    openbao.enable_kv("kv-ml", 2, namespace=ns)
    openbao.write_secret("kv-ml", "creds", {"token": "in-namespace"}, namespace=ns)
    policy = _unique("ns-read")
    openbao.create_policy(
        policy, 'path "kv-ml/data/creds" { capabilities = ["read"] }', namespace=ns
    )
    ns_token = openbao.create_token([policy], namespace=ns)

    inside = _vault_get(http, openbao, "kv-ml/data/creds", ns_token, namespace=ns)
    assert inside.status_code == 200
    assert inside.json()["data"]["data"] == {"token": "in-namespace"}
    # The same path in the root namespace is a different secret (here: none).
    root = _vault_get(http, openbao, "kv-ml/data/creds", openbao.root_token)
    assert root.status_code == 404
    # A namespace token is not valid in the root namespace.
    assert _vault_get(http, openbao, "kv-ml/data/creds", ns_token).status_code == 403

    openbao.enable_approle(namespace=ns)
    role_id, secret_id = openbao.create_approle("app", [policy], namespace=ns)
    auth = openbao.login_approle(role_id, secret_id, namespace=ns)
    assert openbao.read_secret("kv-ml", "creds", namespace=ns, token=auth["client_token"]) == {
        "token": "in-namespace"
    }


def test_openbao_listens_on_loopback_only(openbao: OpenBaoServer) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp (Linux)")
    api = _listening_addresses(openbao.port)
    cluster = _listening_addresses(openbao.port + 1)
    assert api == {"0100007F"}, api  # 127.0.0.1, little-endian hex
    assert cluster <= {"0100007F"}, cluster


def test_openbao_stop_leaves_no_process_and_frees_port() -> None:
    reason = openbao_unavailable_reason()
    if reason is not None:
        pytest.skip(SKIP_PREFIX + reason)
    server = OpenBaoServer().start()
    pid, port = server.pid, server.port
    server.stop()
    server.stop()  # idempotent
    assert pid is not None
    assert not Path(f"/proc/{pid}").exists()
    assert _listening_addresses(port) == set()


# --------------------------------------------------------------------------- MLflow


def test_mlflow_admin_basic_auth_and_anonymous(
    mlflow_server: MlflowAuthServer, http: requests.Session
) -> None:
    admin = (mlflow_server.admin_username, mlflow_server.admin_password)
    assert http.get(mlflow_server.url + SEARCH, auth=admin, timeout=15).status_code == 200
    anon = http.get(mlflow_server.url + SEARCH, timeout=15)
    assert anon.status_code == 401
    assert anon.headers.get("WWW-Authenticate", "").startswith("Basic")
    wrong = (mlflow_server.admin_username, "not-the-password")
    assert http.get(mlflow_server.url + SEARCH, auth=wrong, timeout=15).status_code == 401
    # /health is deliberately unauthenticated (readiness probe).
    assert http.get(mlflow_server.url + "/health", timeout=15).status_code == 200


def test_mlflow_password_update_takes_effect_immediately(
    mlflow_server: MlflowAuthServer, http: requests.Session
) -> None:
    user = _unique("user")
    old, new = "old-password-" + uuid.uuid4().hex[:6], "new-password-" + uuid.uuid4().hex[:6]
    mlflow_server.create_user(user, old)
    # Authenticate once so the credential sits in the server's auth cache...
    assert http.get(mlflow_server.url + SEARCH, auth=(user, old), timeout=15).status_code == 200
    mlflow_server.update_password(user, new)
    # ...and still the old password is refused at once: the update invalidates the cache.
    assert http.get(mlflow_server.url + SEARCH, auth=(user, old), timeout=15).status_code == 401
    assert http.get(mlflow_server.url + SEARCH, auth=(user, new), timeout=15).status_code == 200


def test_mlflow_bearer_token_and_api_key(
    mlflow_server: MlflowAuthServer, http: requests.Session
) -> None:
    user = _unique("tokuser")
    mlflow_server.create_user(user, "unused-password-" + uuid.uuid4().hex[:6])
    token = "tok-" + uuid.uuid4().hex

    def status(headers: dict[str, str]) -> int:
        return http.get(mlflow_server.url + SEARCH, headers=headers, timeout=15).status_code

    mlflow_server.set_tokens({token: user, "ghost-token": _unique("no-such-user")})
    assert status({"Authorization": f"Bearer {token}"}) == 200
    assert status({"X-Api-Key": token}) == 200
    assert status({"Authorization": "Bearer unknown-token"}) == 401
    assert status({"X-Api-Key": "unknown-token"}) == 401
    assert status({"X-Api-Key": "ghost-token"}) == 401  # token of a user that does not exist

    # Rotation: the server re-reads the file on every request.
    rotated = "tok-" + uuid.uuid4().hex
    mlflow_server.set_tokens({rotated: user})
    assert status({"Authorization": f"Bearer {token}"}) == 401
    assert status({"Authorization": f"Bearer {rotated}"}) == 200


def test_mlflow_new_user_can_create_and_upload_through_proxy(
    mlflow_server: MlflowAuthServer, http: requests.Session
) -> None:
    """A plain READ-default user creates what the library's tests need; artifacts are proxied.

    The artifact upload is a native FastAPI route, so this also proves the custom
    authorization function is bridged for FastAPI as well as Flask routes.
    """
    user = _unique("creator")
    mlflow_server.create_user(user, "creator-password-" + uuid.uuid4().hex[:6])
    token = "tok-" + uuid.uuid4().hex
    mlflow_server.set_tokens({token: user})
    bearer = {"Authorization": f"Bearer {token}"}
    api = mlflow_server.url + "/api/2.0/mlflow"

    exp = http.post(f"{api}/experiments/create", json={"name": _unique("e")}, headers=bearer)
    assert exp.status_code == 200, exp.text
    exp_id = exp.json()["experiment_id"]
    got = http.get(f"{api}/experiments/get", params={"experiment_id": exp_id}, headers=bearer)
    assert got.json()["experiment"]["artifact_location"] == f"mlflow-artifacts:/{exp_id}"
    run = http.post(f"{api}/runs/create", json={"experiment_id": exp_id}, headers=bearer)
    assert run.status_code == 200, run.text
    run_id = run.json()["run"]["info"]["run_id"]
    model = http.post(
        f"{api}/registered-models/create", json={"name": _unique("m")}, headers=bearer
    )
    assert model.status_code == 200, model.text

    artifact = f"{mlflow_server.url}/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run_id}/artifacts"
    assert http.put(f"{artifact}/a.txt", data=b"hello", headers=bearer).status_code == 200
    assert (mlflow_server.artifacts_dir / exp_id / run_id / "artifacts" / "a.txt").read_bytes() == (
        b"hello"
    )
    assert http.put(f"{artifact}/b.txt", data=b"x").status_code == 401
    bogus = {"Authorization": "Bearer nope"}
    assert http.put(f"{artifact}/c.txt", data=b"x", headers=bogus).status_code == 401

    # Writing into someone else's experiment needs a grant.
    admin = (mlflow_server.admin_username, mlflow_server.admin_password)
    other = http.post(f"{api}/experiments/create", json={"name": _unique("adm")}, auth=admin)
    other_id = other.json()["experiment_id"]
    denied = http.post(f"{api}/runs/create", json={"experiment_id": other_id}, headers=bearer)
    assert denied.status_code == 403
    mlflow_server.grant_permission(user, "experiment", other_id, "EDIT")
    allowed = http.post(f"{api}/runs/create", json={"experiment_id": other_id}, headers=bearer)
    assert allowed.status_code == 200, allowed.text


def test_mlflow_listens_on_loopback_only(mlflow_server: MlflowAuthServer) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs /proc/net/tcp (Linux)")
    assert _listening_addresses(mlflow_server.port) == {"0100007F"}


# --------------------------------------------------------------------------- recording server


def test_recording_server_records_and_redirects(
    recording_server: Callable[[], RecordingServer], http: requests.Session
) -> None:
    origin, target = recording_server(), recording_server()
    target.set_response("/landing", status=201, body={"ok": True}, headers={"X-Seen": "1"})
    # Redirect to another hostname (localhost vs 127.0.0.1): a different origin.
    origin.redirect("/start", target.localhost_url + "/landing", status=307)

    basic = "Basic " + base64.b64encode(b"u:p").decode()
    resp = http.post(
        origin.url + "/start?q=1",
        data=b"payload",
        headers={"Authorization": basic, "X-Custom": "c1"},
        timeout=10,
    )
    assert resp.status_code == 201
    assert resp.json() == {"ok": True}
    assert resp.headers["X-Seen"] == "1"

    (first,) = origin.requests
    assert (first.method, first.path, first.query, first.body) == (
        "POST",
        "/start",
        "q=1",
        b"payload",
    )
    assert first.header("authorization") == basic
    assert first.header("X-Custom") == "c1"
    (second,) = target.requests_to("/landing")
    assert second.method == "POST"  # 307 keeps the method and body
    assert second.body == b"payload"
    assert not second.has_header("Authorization")  # requests strips it on a host change
    assert origin.requests_to("/landing") == []

    # Chunked request bodies are recorded whole.
    http.put(origin.url + "/chunked", data=iter([b"ab", b"cd"]), timeout=10)
    assert origin.requests_to("/chunked")[0].body == b"abcd"

    # Unconfigured paths get the default 200 "{}"; records can be cleared.
    assert http.get(origin.url + "/anything", timeout=10).json() == {}
    origin.clear()
    assert origin.requests == []


def test_recording_server_stops(recording_server: Callable[[], RecordingServer]) -> None:
    server = recording_server()
    port = server.port
    assert _listening_addresses(port) <= {"0100007F"}
    server.stop()
    server.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)


# --------------------------------------------------------------------------- helpers


def test_ports_are_free_loopback_ports() -> None:
    assert 0 < free_port() < 65536
    p = free_port_pair()
    assert not _listening_addresses(p)
    assert not _listening_addresses(p + 1)


def test_failed_start_reports_redacted_stderr(tmp_path: Path) -> None:
    """A server that dies during start-up is reported with its stderr tail, secrets masked."""
    secret = "s3cr3t-" + uuid.uuid4().hex
    proc = ServerProcess(
        [sys.executable, "-c", f"import sys; sys.stderr.write('boom {secret}'); sys.exit(3)"],
        name="dies",
        env={},
        cwd=tmp_path,
        log_dir=tmp_path,
        secrets=[secret],
    )
    proc.start()
    timeout = 60.0
    started = time.monotonic()
    with pytest.raises(ServerStartError) as info:
        proc.wait_ready(lambda: False, timeout=timeout, what="never")
    # Noticed the exit instead of waiting out the timeout; half of it leaves a busy machine room.
    assert time.monotonic() - started < timeout / 2
    message = str(info.value)
    assert "exited with code 3" in message
    assert "boom ***" in message
    assert secret not in message
    assert not proc.running()
