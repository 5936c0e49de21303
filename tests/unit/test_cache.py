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


class Store:
    """A secret store double whose answers the test scripts: values, or failures."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.done = threading.Event()

    def fetch(self) -> Credential:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        self.done.set()
        if isinstance(answer, Exception):
            raise answer
        return Credential("bearer", answer)


def wait_for_background(cache: CredentialCache, store: Store) -> None:
    assert store.done.wait(5)
    for _ in range(500):
        if not cache._flights:
            return
        threading.Event().wait(0.01)
    raise AssertionError("background refresh did not finish")


def test_fresh_value_is_served_from_cache() -> None:
    clock, store = Clock(), Store("one", "two")
    cache = CredentialCache(timer=clock)
    first, hit = cache.get("k", 10, store.fetch)
    assert not hit
    clock.now += 7.9  # before 80% of the TTL
    assert cache.get("k", 10, store.fetch) == (first, True)
    assert store.calls == 1


def test_refresh_ahead_serves_current_value_and_fetches_in_background() -> None:
    clock, store = Clock(), Store("one", "two")
    cache = CredentialCache(timer=clock)
    first, _ = cache.get("k", 10, store.fetch)
    store.done.clear()
    clock.now += 8.5  # past 80%, before expiry
    assert cache.get("k", 10, store.fetch) == (first, True)  # no waiting on the store
    wait_for_background(cache, store)
    second, hit = cache.get("k", 10, store.fetch)
    assert hit and second.authorization == "Bearer two"
    assert store.calls == 2
    assert cache.stats.background_refreshes == 1


def test_idle_expired_value_is_fetched_again_synchronously() -> None:
    clock, store = Clock(), Store("one", "two")
    cache = CredentialCache(timer=clock)
    cache.get("k", 10, store.fetch)
    clock.now += 11
    second, hit = cache.get("k", 10, store.fetch, max_stale=3600)
    assert not hit and second.authorization == "Bearer two"


def test_store_failure_serves_previous_value_within_max_stale_then_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    store = Store("one", RuntimeError("store down"))
    cache = CredentialCache(timer=clock)
    first, _ = cache.get("k", 10, store.fetch, max_stale=100)
    clock.now += 11  # expired: the synchronous fetch fails
    assert cache.get("k", 10, store.fetch, max_stale=100) == (first, True)
    assert "MLFLOW_SECRETS_MAX_STALE_SEC" in caplog.text
    calls = store.calls
    clock.now += 1  # within the backoff: served without touching the store
    assert cache.get("k", 10, store.fetch, max_stale=100) == (first, True)
    assert store.calls == calls
    clock.now += 100  # past expiry + max_stale
    with pytest.raises(RuntimeError, match="store down"):
        cache.get("k", 10, store.fetch, max_stale=100)


def test_no_stale_serving_when_max_stale_is_zero() -> None:
    clock = Clock()
    store = Store("one", RuntimeError("store down"))
    cache = CredentialCache(timer=clock)
    cache.get("k", 10, store.fetch, max_stale=0)
    clock.now += 11
    with pytest.raises(RuntimeError):
        cache.get("k", 10, store.fetch, max_stale=0)


def test_invalidated_credential_is_never_served_stale() -> None:
    store = Store("one", RuntimeError("store down"))
    cache = CredentialCache()
    first, _ = cache.get("k", 10, store.fetch, max_stale=3600)
    assert cache.invalidate("k", first)
    with pytest.raises(RuntimeError):
        cache.get("k", 10, store.fetch, max_stale=3600)


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
