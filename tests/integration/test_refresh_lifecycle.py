"""Refresh over a credential's life, against real OpenBao behind a fault-injecting proxy
(SPEC §4, §6): a failing store is retried with exponential backoff while the last good value
keeps serving the real MLflow server; a bearer JWT is replaced before its ``exp`` and never sent
after it, even when the store is down. Every flow runs at DEBUG and is searched for secrets.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest
import requests
from mlflow import MlflowClient

import mlflow_secrets_auth
from mlflow_secrets_auth import runtime
from mlflow_secrets_auth.errors import BackendError

from support.counting_proxy import CountingProxy
from support.mlflow_server import MlflowAuthServer
from support.openbao import OpenBaoServer
from support.recording_server import RecordingServer

if TYPE_CHECKING:
    from support.leaks import LeakCheck

pytestmark = pytest.mark.integration


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def proxy(openbao: OpenBaoServer) -> Iterator[CountingProxy]:
    """OpenBao behind a proxy that counts secret reads and can fail them on cue."""
    with CountingProxy(openbao.addr) as counting:
        yield counting


# -- backoff -----------------------------------------------------------------------------------


def test_a_failing_store_is_retried_with_backoff_while_mlflow_calls_keep_succeeding(
    openbao: OpenBaoServer,
    mlflow_server: MlflowAuthServer,
    proxy: CountingProxy,
    vault_env: Callable[..., None],
    monkeypatch: pytest.MonkeyPatch,
    leak_check: LeakCheck,
) -> None:
    username, password = unique("backoff"), f"{secrets.token_urlsafe(18)}@:/%"
    mlflow_server.create_user(username, password)
    path = unique("mlflow/backoff")
    openbao.write_secret("secret", path, {"username": username, "password": password})
    read = f"/v1/secret/data/{path}"
    # TTL 1 s: refresh ahead at 0.8 s, first retry 0.2 s later, then 0.4, 0.8, 1.6, 3.2 s ...
    vault_env(
        f"secret/{path}",
        VAULT_ADDR=proxy.url,
        MLFLOW_VAULT_AUTH_MODE="basic",
        MLFLOW_VAULT_TTL_SEC="1",
    )
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    leak_check.begin()
    client = MlflowClient()
    client.search_experiments(max_results=1)
    stats = runtime.CACHE.stats
    assert (stats.fetches, proxy.count("GET", read)) == (1, 1)

    proxy.fail(read, 503)  # until healed
    start, calls = time.monotonic(), 0
    while time.monotonic() - start < 6:  # continuous calls, one after another
        client.search_experiments(max_results=1)  # raises if the stale value were not served
        calls += 1
    settle = time.monotonic() + 10  # a background attempt may still be waiting on the store
    while stats.failures < stats.attempts - 1 and time.monotonic() < settle:
        time.sleep(0.05)
    attempts = stats.attempts - 1

    # Once per request would be one per call; a constant 0.2 s wait ~25; doubling: about 5.
    assert calls > 20
    assert 2 <= attempts <= 8, f"{attempts} store attempts in 6 s of continuous calls"
    assert stats.failures == attempts and stats.stale_served > 0
    assert proxy.count("GET", read) >= 1 + attempts  # every attempt reached the store

    proxy.heal()
    deadline = time.monotonic() + 15
    while stats.fetches < 2 and time.monotonic() < deadline:  # the next attempt succeeds
        client.search_experiments(max_results=1)
        time.sleep(0.05)
    assert stats.fetches == 2
    assert "still using the cached credential" in leak_check.log_text
    leak_check.assert_clean([password, openbao.root_token])


# -- a JWT's exp -------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(exp: float) -> str:
    """A JWT-shaped token (unsigned: the plugin reads ``exp``, the server would verify)."""
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    claims = {"sub": "training-job", "exp": exp, "jti": uuid.uuid4().hex}
    return f"{header}.{b64url(json.dumps(claims).encode())}.{b64url(secrets.token_bytes(32))}"


def send(target: RecordingServer) -> str | None:
    """One request through the plugin; the Authorization header the server received."""
    before = len(target.requests)
    requests.get(target.url + "/api", auth=mlflow_secrets_auth.get_auth(), timeout=10)
    assert len(target.requests) == before + 1
    return target.requests[-1].header("authorization")


def test_a_jwt_is_replaced_before_its_exp_and_never_sent_after_it(
    openbao: OpenBaoServer,
    proxy: CountingProxy,
    vault_env: Callable[..., None],
    target: RecordingServer,
    leak_check: LeakCheck,
) -> None:
    path = unique("jwt")
    read = f"/v1/secret/data/{path}"
    first = make_jwt(time.time() + 3)
    openbao.write_secret("secret", path, {"token": first})
    vault_env(f"secret/{path}", VAULT_ADDR=proxy.url, MLFLOW_VAULT_TTL_SEC="300")
    leak_check.begin()
    first_exp = json.loads(base64.urlsafe_b64decode(first.split(".")[1] + "=="))["exp"]
    assert send(target) == f"Bearer {first}"

    second = make_jwt(time.time() + 6)
    openbao.write_secret("secret", path, {"token": second})
    reread_at = None
    while time.time() < first_exp + 0.5:  # calls right across the first token's exp
        sent_at = time.time()
        header = send(target)
        if reread_at is None and proxy.count("GET", read) == 2:
            reread_at = time.time()
        if sent_at >= first_exp:
            assert header == f"Bearer {second}", "a token was sent after its exp"
        time.sleep(0.05)
    assert reread_at is not None and reread_at < first_exp, "not fetched again before the exp"
    assert proxy.count("GET", read) == 2  # the TTL (300 s) alone would not have read it again

    proxy.fail(read, 503)  # the store goes down while the second token still works
    second_exp = json.loads(base64.urlsafe_b64decode(second.split(".")[1] + "=="))["exp"]
    while time.time() < second_exp - 0.3:
        assert send(target) == f"Bearer {second}"  # refresh fails; the token still works
        time.sleep(0.05)
    time.sleep(max(0.0, second_exp - time.time()) + 0.1)
    received = len(target.requests)
    errors = []
    for _ in range(3):
        with pytest.raises(BackendError) as info:
            requests.get(target.url + "/api", auth=mlflow_secrets_auth.get_auth(), timeout=10)
        errors.append(info.value)
    assert len(target.requests) == received  # nothing sent: not the expired token, not nothing
    assert {(e.backend, e.step) for e in errors} <= {("vault", "read"), ("vault", "connect")}
    assert all(second not in (r.header("authorization") or "") for r in target.requests[received:])
    segments = [first, second, first.split(".")[1], second.split(".")[1], openbao.root_token]
    leak_check.assert_clean(segments, *errors)
