"""A real ``os.fork()`` with every lock held and a fetch in flight in the parent (SPEC §6).

The parent's other threads do not exist in the child: whatever they held must not block it, and
the fetch they were running must not be waited on. Cached credentials are kept; backends (SDK
clients, connection pools) are not. The child reports through a pipe; an alarm ends it if it
hangs, which fails the test.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any

import pytest

from mlflow_secrets_auth import log, runtime
from mlflow_secrets_auth.clear_marker import MARKER
from mlflow_secrets_auth.credentials import Credential
from mlflow_secrets_auth.settings import settings_cache

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")

CHILD_DEADLINE_SEC = 20


@pytest.fixture
def vault_like_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """A configuration whose backend is built without I/O (nothing here reaches a server)."""
    for name, value in {
        "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
        "VAULT_ADDR": "http://127.0.0.1:1",
        "VAULT_TOKEN": "unit-test-token",
        "MLFLOW_VAULT_SECRET_PATH": "secret/fork/test",
        "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
        "MLFLOW_SECRETS_CACHE_DIR": str(tmp_path / "marker"),
    }.items():
        monkeypatch.setenv(name, value)


class HeldEverywhere:
    """A parent thread that holds every lock the plugin has, and one that is mid-fetch."""

    def __init__(self, auth: Any) -> None:
        self.release = threading.Event()
        self.locks = [
            runtime._lock,
            settings_cache._lock,
            MARKER._lock,
            log._lock,
            auth.policy._lock,
            auth.source.backend._lock,
        ]
        self.holding = threading.Event()
        self.fetching = threading.Event()
        self.threads = [
            threading.Thread(target=self._hold, daemon=True),
            threading.Thread(target=self._fetch, daemon=True),
        ]

    def _hold(self) -> None:
        for lock in self.locks:
            lock.acquire()
        self.holding.set()
        self.release.wait(30)
        for lock in reversed(self.locks):
            lock.release()

    def _stuck_fetch(self) -> Credential:
        self.fetching.set()
        self.release.wait(30)
        return Credential("bearer", "parent-only-value")

    def _fetch(self) -> None:
        runtime.CACHE.get("cold-key", 60, self._stuck_fetch)

    def __enter__(self) -> HeldEverywhere:
        for thread in self.threads:
            thread.start()
        assert self.holding.wait(10) and self.fetching.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        for thread in self.threads:
            thread.join(10)


def in_child(parent_auth: Any, parent_backend: Any) -> dict[str, Any]:
    """What the child checks; every step would block forever on an inherited lock or flight."""
    report: dict[str, Any] = {}
    credential = parent_auth.source.get()  # polls the marker, reads the warm entry
    report["warm_value"] = credential.authorization
    report["fetches_after_warm_get"] = runtime.CACHE.stats.fetches
    own, hit = runtime.CACHE.get("cold-key", 60, lambda: Credential("bearer", "child-own"))
    report["cold"] = (own.authorization, hit)
    os.environ["MLFLOW_SECRETS_TIMEOUT_SEC"] = "4"  # a reload: settings lock, runtime lock
    auth = runtime.current_auth()
    report["new_auth"] = auth is not parent_auth
    report["new_backend"] = auth.source.backend is not parent_backend
    report["kept_auth_reconnects"] = parent_auth.source.backend is not parent_backend
    report["one_backend_per_settings"] = parent_auth.source.backend is runtime.backend_for(
        parent_auth.source.settings
    )
    parent_auth.policy.check("http://127.0.0.1:6553/api")  # a new decision takes its lock
    log.register_secret("child-registered-secret")
    log.get_logger("mlflow_secrets_auth.test").warning("child logging works")
    MARKER.poll()
    return report


def fork_and_report(parent_auth: Any, parent_backend: Any) -> tuple[int, dict[str, Any]]:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(read_end)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # not pytest-timeout's handler
            signal.alarm(CHILD_DEADLINE_SEC)  # a hang ends the child with SIGALRM
            report = in_child(parent_auth, parent_backend)
            os.write(write_end, json.dumps(report).encode())
            code = 0
        except BaseException as error:  # reported to the parent as text
            os.write(write_end, json.dumps({"error": repr(error)}).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    chunks = []
    with os.fdopen(read_end, "rb") as stream:
        chunks.append(stream.read())
    _, status = os.waitpid(pid, 0)
    return status, json.loads(b"".join(chunks) or b"{}")


@pytest.fixture
def warm_auth(vault_like_env: None) -> Any:
    auth = runtime.current_auth()
    assert auth is not None
    runtime.CACHE.get(auth.source.key, 300, lambda: Credential("bearer", "warm-value"))
    return auth


def test_forked_child_keeps_credentials_and_owns_its_locks_flights_and_clients(
    warm_auth: Any,
) -> None:
    parent_backend = warm_auth.source.backend
    with HeldEverywhere(warm_auth):
        status, report = fork_and_report(warm_auth, parent_backend)
    assert os.WIFEXITED(status), f"the child hung or crashed (status {status}): {report}"
    assert os.WEXITSTATUS(status) == 0, report
    assert report == {
        "warm_value": "Bearer warm-value",
        "fetches_after_warm_get": 0,
        "cold": ["Bearer child-own", False],
        "new_auth": True,
        "new_backend": True,
        "kept_auth_reconnects": True,
        "one_backend_per_settings": True,
    }
    # The parent is untouched: its backend, its flight (finished now), its locks.
    assert warm_auth.source.backend is parent_backend
    finished, _ = runtime.CACHE.get("cold-key", 60, lambda: Credential("bearer", "x"))
    assert finished.authorization == "Bearer parent-only-value"
    assert runtime._lock.acquire(timeout=5)
    runtime._lock.release()


def test_parent_waits_for_the_cache_lock_only_across_the_fork(warm_auth: Any) -> None:
    """The before-fork hook holds the cache lock so the child copies a consistent cache."""
    assert runtime.CACHE._lock.acquire(timeout=1)
    runtime.CACHE._lock.release()
    status, report = fork_and_report(warm_auth, warm_auth.source.backend)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, report
    assert runtime.CACHE._lock.acquire(timeout=1)  # released again in the parent
    runtime.CACHE._lock.release()
    assert sys.modules["mlflow_secrets_auth.runtime"] is runtime
