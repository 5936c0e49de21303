"""Cache: TTL per entry, single flight, invalidate-if-current (SPEC §6)."""

from __future__ import annotations

import threading

import pytest

from mlflow_secrets_auth.cache import CredentialCache
from mlflow_secrets_auth.credentials import Credential


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_entry_expires_after_its_ttl() -> None:
    clock = Clock()
    cache = CredentialCache(timer=clock)
    values = iter(["one", "two"])
    fetch = lambda: Credential("bearer", next(values))  # noqa: E731
    first, hit = cache.get("k", 10, fetch)
    assert not hit
    clock.now += 9
    assert cache.get("k", 10, fetch) == (first, True)
    clock.now += 2
    second, hit = cache.get("k", 10, fetch)
    assert not hit and second.authorization == "Bearer two"


def test_concurrent_cold_callers_cause_one_fetch() -> None:
    cache = CredentialCache()
    calls = 0
    release = threading.Event()

    def slow_fetch() -> Credential:
        nonlocal calls
        calls += 1
        release.wait(5)
        return Credential("bearer", "shared")

    results: list[Credential] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("k", 60, slow_fetch)[0]))
        for _ in range(32)
    ]
    for t in threads:
        t.start()
    release.set()
    for t in threads:
        t.join(5)
    assert calls == 1
    assert len(results) == 32 and len({id(r) for r in results}) == 1


def test_failed_fetch_is_shared_and_not_cached() -> None:
    cache = CredentialCache()

    def failing() -> Credential:
        raise RuntimeError("store down")

    with pytest.raises(RuntimeError):
        cache.get("k", 60, failing)
    cred, hit = cache.get("k", 60, lambda: Credential("bearer", "ok"))
    assert not hit and cred.authorization == "Bearer ok"
    assert cache.stats.failures == 1


def test_invalidate_only_drops_the_current_credential_once() -> None:
    cache = CredentialCache()
    old, _ = cache.get("k", 60, lambda: Credential("bearer", "old"))
    assert cache.invalidate("k", old) is True
    assert cache.invalidate("k", old) is False  # a second failure with the same one: no-op
    new, _ = cache.get("k", 60, lambda: Credential("bearer", "new"))
    assert cache.invalidate("k", old) is False  # stale failure must not drop the fresh value
    assert cache.get("k", 60, lambda: Credential("bearer", "x")) == (new, True)
