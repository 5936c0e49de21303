"""Forked workers (multiprocessing "fork", as DataLoader and gunicorn do) against the real MLflow
server, with credentials from real OpenBao, moto and the Key Vault fake (SPEC §6 "Processes").

A child forked from a warm parent uses the parent's cached credential and reads nothing from the
store. A child forked while a parent thread is in the middle of a (slowed) fetch never waits on
that fetch or its locks: it makes its own, on SDK clients of its own, and finishes; a child still
running after CHILD_DEADLINE_SEC is killed and fails the test.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest
from mlflow import MlflowClient

from mlflow_secrets_auth import runtime

from support.counting_proxy import CountingProxy
from support.mlflow_server import MlflowAuthServer

if TYPE_CHECKING:
    from support.azure_keyvault_fake import KeyVaultFake
    from support.leaks import LeakCheck
    from support.moto_server import MotoServer
    from support.openbao import OpenBaoServer

pytestmark = pytest.mark.integration

CHILDREN = 8
CHILD_DEADLINE_SEC = 30
SLOW_READ_SEC = 2.0
AZURE_NAME = "mlflow-fork-credential"


@dataclass
class Store:
    """One secret store holding an MLflow user's basic credentials, as the tests observe it."""

    name: str
    reads: Callable[[], int]  # secret reads the store has seen so far
    slow: Callable[[float], None]  # hold every secret read this long
    slowed: Callable[[], int]  # reads held so far: a fetch is in progress
    secrets: Callable[[], list[str]]  # values that must never be shown


def mlflow_user(server: MlflowAuthServer) -> tuple[str, str]:
    username = f"fork-{uuid.uuid4().hex[:8]}"
    password = f"{secrets.token_urlsafe(18)}@:/%"
    server.create_user(username, password)
    return username, password


@pytest.fixture(params=["vault", "aws", "azure"])
def store(
    request: pytest.FixtureRequest,
    mlflow_server: MlflowAuthServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Store]:
    """The plugin wired to MLflow (basic auth) and to one store; the user's password is in it."""
    username, password = mlflow_user(mlflow_server)
    payload = json.dumps({"username": username, "password": password})
    for name, value in {
        "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    if request.param == "vault":
        openbao: OpenBaoServer = request.getfixturevalue("openbao")
        vault_env = request.getfixturevalue("vault_env")
        path = f"mlflow/fork-{uuid.uuid4().hex[:8]}"
        openbao.write_secret("secret", path, {"username": username, "password": password})
        with CountingProxy(openbao.addr) as proxy:
            vault_env(f"secret/{path}", VAULT_ADDR=proxy.url, MLFLOW_VAULT_AUTH_MODE="basic")
            read = f"/v1/secret/data/{path}"
            yield Store(
                "vault",
                reads=lambda: proxy.count("GET", read),
                slow=lambda seconds: proxy.delay(read, seconds),
                slowed=lambda: proxy.count("GET", read),
                secrets=lambda: [password, openbao.root_token],
            )
    elif request.param == "aws":
        moto: MotoServer = request.getfixturevalue("aws_env")
        secret = moto.create_secret(payload)
        with CountingProxy(moto.url) as proxy:  # every Secrets Manager call is POST /
            monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", proxy.url)
            monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", secret.name)
            monkeypatch.setenv("MLFLOW_AWS_AUTH_MODE", "basic")
            yield Store(
                "aws",
                reads=lambda: proxy.count("POST", "/"),
                slow=lambda seconds: proxy.delay("/", seconds),
                slowed=lambda: proxy.count("POST", "/"),
                secrets=lambda: [password],
            )
    else:
        vault: KeyVaultFake = request.getfixturevalue("azure_keyvault")
        vault.set_secret(AZURE_NAME, payload)
        monkeypatch.setenv("MLFLOW_AZURE_SECRET_NAME", AZURE_NAME)
        monkeypatch.setenv("MLFLOW_AZURE_AUTH_MODE", "basic")
        yield Store(
            "azure",
            reads=lambda: vault.secret_reads(AZURE_NAME),
            slow=vault.slow_reads,
            slowed=lambda: vault.slowed_requests,
            secrets=lambda: [password, *vault.identity.issued],  # the access tokens too
        )


def child_call(parent_backends: list[Any]) -> None:
    """One worker: an MLflow call through the plugin, with its DEBUG log on stderr (captured by
    the parent), then a check that it did not use its parent's backend or SDK client."""
    handler = logging.StreamHandler(os.fdopen(os.dup(2), "w"))
    logging.getLogger().addHandler(handler)
    logging.getLogger("mlflow_secrets_auth").setLevel(logging.DEBUG)
    MlflowClient().search_experiments(max_results=1)
    auth = runtime.current_auth()
    assert auth is not None
    backend, client = auth.source.backend, getattr(auth.source.backend, "_client", None)
    for inherited in parent_backends:
        assert backend is not inherited, "the child used its parent's backend"
        assert client is None or client is not getattr(inherited, "_client", None), (
            "the child used its parent's SDK client"
        )


def run_children(parent_backends: list[Any]) -> list[int | None]:
    """Fork CHILDREN workers; their exit codes (killed if still running at the deadline)."""
    context = multiprocessing.get_context("fork")
    workers = [
        context.Process(target=child_call, args=(parent_backends,), daemon=True)
        for _ in range(CHILDREN)
    ]
    for worker in workers:
        worker.start()
    deadline = time.monotonic() + CHILD_DEADLINE_SEC
    for worker in workers:
        worker.join(max(0.0, deadline - time.monotonic()))
    hung = [w for w in workers if w.is_alive()]
    for worker in hung:
        worker.kill()
        worker.join(10)
    assert not hung, f"{len(hung)} of {CHILDREN} children hung past {CHILD_DEADLINE_SEC}s"
    return [w.exitcode for w in workers]


def test_children_forked_from_a_warm_parent_read_nothing(
    store: Store, leak_check: LeakCheck
) -> None:
    leak_check.begin()
    MlflowClient().search_experiments(max_results=1)  # the parent's cache is now warm
    reads = store.reads()
    assert reads == 1

    exit_codes = run_children(list(runtime._backends.values()))

    assert exit_codes == [0] * CHILDREN
    assert store.reads() == reads  # not one read for eight children
    MlflowClient().search_experiments(max_results=1)  # the parent is unharmed
    assert store.reads() == reads
    leak_check.assert_clean(store.secrets())


def test_children_forked_during_a_fetch_make_their_own(store: Store, leak_check: LeakCheck) -> None:
    leak_check.begin()
    store.slow(SLOW_READ_SEC)
    errors: list[BaseException] = []

    def parent_call() -> None:
        try:
            MlflowClient().search_experiments(max_results=1)
        except BaseException as error:  # asserted below
            errors.append(error)

    parent = threading.Thread(target=parent_call)
    parent.start()
    deadline = time.monotonic() + 20
    while store.slowed() == 0 and time.monotonic() < deadline:  # the read has reached the store
        time.sleep(0.01)
    assert store.slowed() == 1 and parent.is_alive(), "the parent is not in the middle of a fetch"

    exit_codes = run_children(list(runtime._backends.values()))
    parent.join(30)

    assert exit_codes == [0] * CHILDREN
    assert errors == [] and not parent.is_alive()
    assert store.reads() == 1 + CHILDREN  # each child its own fetch, the parent's finished too
    leak_check.assert_clean(store.secrets())
