"""Cache: TTL per entry, single flight, invalidate-if-current, backoff, expiry (SPEC §4, §6)."""

from __future__ import annotations

import itertools
import random
import threading

import pytest

from mlflow_secrets_auth.cache import CredentialCache, backoff_delay
from mlflow_secrets_auth.credentials import Credential


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Store:
    """A secret store double whose answers the test scripts: values, or failures."""

    def __init__(self, *answers: str | BaseException) -> None:
        self.answers = list(answers)
        self.calls = 0
        self.done = threading.Event()

    def fetch(self) -> Credential:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        self.done.set()
        if isinstance(answer, BaseException):
            raise answer
        return Credential("bearer", answer)


def wait_for_background(cache: CredentialCache, store: Store) -> None:
    assert store.done.wait(5)
    for _ in range(500):
        if not cache._flights:
            return
        threading.Event().wait(0.01)
    raise AssertionError("background refresh did not finish")


def settle(cache: CredentialCache) -> None:
    """Wait until no fetch is in flight (a background refresh has finished)."""
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
    clock.now += 0.5  # within the first backoff wait (<= 1 s): served without the store
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


def test_failed_fetch_is_not_cached_and_is_retried_after_the_backoff_wait() -> None:
    clock = Clock()
    cache = CredentialCache(timer=clock, jitter=lambda: 0.0)
    store = Store(RuntimeError("store down"), "ok")
    with pytest.raises(RuntimeError):
        cache.get("k", 60, store.fetch)
    clock.now += 0.99  # the first wait is min(1 s, 0.2 x TTL): the store is left alone
    with pytest.raises(RuntimeError, match="store down"):
        cache.get("k", 60, store.fetch)
    assert store.calls == 1 and cache.stats.backoff_refusals == 1
    clock.now += 0.02
    cred, hit = cache.get("k", 60, store.fetch)
    assert not hit and cred.authorization == "Bearer ok"
    assert (cache.stats.failures, cache.stats.attempts, cache.stats.retries) == (1, 2, 1)


def test_invalidate_only_drops_the_current_credential_once() -> None:
    cache = CredentialCache()
    old, _ = cache.get("k", 60, lambda: Credential("bearer", "old"))
    assert cache.invalidate("k", old) is True
    assert cache.invalidate("k", old) is False  # a second failure with the same one: no-op
    new, _ = cache.get("k", 60, lambda: Credential("bearer", "new"))
    assert cache.invalidate("k", old) is False  # stale failure must not drop the fresh value
    assert cache.get("k", 60, lambda: Credential("bearer", "x")) == (new, True)


# -- when a value is refreshed -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("ttl", "refresh_after"),
    [(10, 8.0), (60, 48.0), (75, 60.0), (300, 285.0), (3600, 3585.0)],
)
def test_ttl_bound_refresh_starts_at_80_percent_or_15_s_before_the_ttl(
    ttl: float, refresh_after: float
) -> None:
    clock, store = Clock(), Store("one", "two")
    cache = CredentialCache(timer=clock)
    cache.get("k", ttl, store.fetch)
    clock.now += refresh_after - 0.01
    cache.get("k", ttl, store.fetch)
    assert store.calls == 1
    store.done.clear()
    clock.now += 0.02
    cache.get("k", ttl, store.fetch)
    wait_for_background(cache, store)
    assert store.calls == 2


# -- backoff -------------------------------------------------------------------------------------


def test_backoff_delay_doubles_from_the_first_wait_up_to_60_s_and_jitter_only_shortens() -> None:
    nominal = [backoff_delay(300, n, 0.0) for n in range(1, 10)]
    assert nominal == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert [backoff_delay(300, n, 0.999_999) for n in (1, 7)] == pytest.approx([0.9, 54])
    assert backoff_delay(2, 1, 0.0) == pytest.approx(0.4)  # 0.2 x TTL for short TTLs
    assert backoff_delay(2, 3, 0.0) == pytest.approx(1.6)
    assert backoff_delay(300, 10_000, 0.0) == 60  # no overflow after days of failures


def attempt_times(
    cache: CredentialCache, clock: Clock, store: Store, *, until: float, step: float = 0.05
) -> list[float]:
    """Call the cache every ``step`` (fake) seconds with no value to serve; when the store was
    called, relative to the start."""
    start, times = clock.now, []
    while clock.now - start < until:
        calls = store.calls
        with pytest.raises(RuntimeError):
            cache.get("k", 300, store.fetch)
        if store.calls != calls:
            times.append(clock.now - start)
        clock.now += step
    return times


def test_failed_attempts_are_spaced_by_doubling_jittered_waits() -> None:
    clock, draws = Clock(), random.Random(7)
    cache = CredentialCache(timer=clock, jitter=draws.random)
    store = Store(RuntimeError("store down"))
    times = attempt_times(cache, clock, store, until=400)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    nominal = [min(60.0, 2.0**i) for i in range(len(gaps))]
    assert len(gaps) >= 10
    for gap, wait in zip(gaps, nominal, strict=True):
        assert 0.9 * wait - 1e-6 <= gap <= wait + 0.05 + 1e-6  # the loop's step rounds up
    assert len({round(gap / wait, 3) for gap, wait in zip(gaps, nominal, strict=True)}) > 3
    assert cache.stats.attempts == store.calls == len(times)
    assert cache.stats.retries == len(times) - 1
    assert cache.stats.backoff_refusals > 7000  # every other call: no store call at all


def test_a_success_resets_the_backoff() -> None:
    clock = Clock()
    cache = CredentialCache(timer=clock, jitter=lambda: 0.0)
    failing = Store(RuntimeError("store down"))
    assert attempt_times(cache, clock, failing, until=20)[-1] == pytest.approx(15, abs=0.25)
    clock.now += 20  # the wait after the fifth failure (16 s) is over
    cache.get("k", 300, Store("back").fetch)
    cache.invalidate("k", cache.get("k", 300, failing.fetch)[0])  # rejected by the server
    assert attempt_times(cache, clock, failing, until=4) == pytest.approx([0, 1, 3], abs=0.11)


def test_a_failing_store_is_retried_logarithmically_while_the_stale_value_is_served() -> None:
    clock = Clock()
    cache = CredentialCache(timer=clock, jitter=random.Random(3).random)
    store = Store("good", RuntimeError("store down"))
    good, _ = cache.get("k", 10, store.fetch, max_stale=3600)
    clock.now += 8.5  # refresh ahead: the background fetch fails from here on
    for _ in range(int(600 / 0.1)):  # ten minutes of continuous calls
        assert cache.get("k", 10, store.fetch, max_stale=3600) == (good, True)
        settle(cache)
        clock.now += 0.1
    # 1 + 2 + 4 + ... + 32 s, then one a minute: 6 in the first minute, ~9 after it.
    assert 13 <= store.calls - 1 <= 17
    assert cache.stats.attempts == store.calls
    assert cache.stats.stale_served > 5000


def test_a_background_refresh_failure_does_not_retry_before_its_wait() -> None:
    clock = Clock()
    cache = CredentialCache(timer=clock, jitter=lambda: 0.0)
    store = Store("good", RuntimeError("store down"))
    cache.get("k", 10, store.fetch)
    clock.now += 8.5
    store.done.clear()
    cache.get("k", 10, store.fetch)
    wait_for_background(cache, store)
    calls = store.calls
    clock.now += 0.9  # still before expiry, within the first one-second wait
    cache.get("k", 10, store.fetch)
    settle(cache)
    assert store.calls == calls


# -- the credential's own expiry -----------------------------------------------------------------


class Wall:
    """A wall clock that moves with ``clock`` (epoch seconds)."""

    def __init__(self, clock: Clock, epoch: float = 1_700_000_000.0) -> None:
        self.clock, self.offset = clock, epoch - clock.now

    def __call__(self) -> float:
        return self.clock.now + self.offset


def expiring(value: str, at: float) -> Credential:
    credential = Credential("bearer", value)
    credential.cap_expiry(at)
    return credential


def test_a_credential_expiring_before_the_ttl_is_refreshed_at_80_percent_of_its_life() -> None:
    clock = Clock()
    wall = Wall(clock)
    cache = CredentialCache(timer=clock, wall=wall)
    answers = iter([expiring("one", wall() + 3), expiring("two", wall() + 1000)])
    calls = 0

    def fetch() -> Credential:
        nonlocal calls
        calls += 1
        return next(answers)

    first, _ = cache.get("k", 300, fetch)
    clock.now += 2.3
    assert cache.get("k", 300, fetch) == (first, True) and calls == 1
    clock.now += 0.2  # past 2.4 s, 80% of its own three seconds
    assert cache.get("k", 300, fetch) == (first, True)  # at once, refreshed in the background
    settle(cache)
    assert calls == 2
    second, _ = cache.get("k", 300, fetch)
    assert second.authorization == "Bearer two"
    clock.now += 284  # the second one lives longer than the TTL: the TTL rules again
    assert cache.get("k", 300, fetch) == (second, True) and calls == 2


def test_a_credential_past_its_own_expiry_is_never_served_stale() -> None:
    clock = Clock()
    wall = Wall(clock)
    cache = CredentialCache(timer=clock, wall=wall, jitter=lambda: 0.0)
    down = RuntimeError("store down")
    answers: list[Credential | Exception] = [expiring("one", wall() + 3)]

    def fetch() -> Credential:
        answer = answers[-1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    first, _ = cache.get("k", 300, fetch, max_stale=3600)
    answers.append(down)
    clock.now += 2.5  # refresh ahead fails; the value still works for half a second
    assert cache.get("k", 300, fetch, max_stale=3600) == (first, True)
    settle(cache)
    clock.now += 0.4
    assert cache.get("k", 300, fetch, max_stale=3600) == (first, True)
    clock.now += 0.1  # its own expiry: the stale window (an hour) does not extend it
    with pytest.raises(RuntimeError, match="store down"):
        cache.get("k", 300, fetch, max_stale=3600)
    clock.now += 60
    with pytest.raises(RuntimeError, match="store down"):
        cache.get("k", 300, fetch, max_stale=3600)
    assert len(cache) == 0


def test_a_credential_without_expiry_is_served_stale_past_the_ttl() -> None:
    clock = Clock()
    cache = CredentialCache(timer=clock, wall=Wall(clock))
    store = Store("one", RuntimeError("store down"))
    first, _ = cache.get("k", 300, store.fetch, max_stale=3600)
    clock.now += 1000
    assert cache.get("k", 300, store.fetch, max_stale=3600) == (first, True)


# -- fork ----------------------------------------------------------------------------------------


def test_after_fork_in_child_keeps_credentials_and_drops_flights_and_lock() -> None:
    """The reset on its own (test_fork.py forks for real): a flight that a vanished thread ran
    is not waited on, and a lock it held does not block."""
    cache = CredentialCache()
    warm, _ = cache.get("warm", 60, lambda: Credential("bearer", "kept"))
    release = threading.Event()

    def stuck() -> Credential:
        release.wait(10)
        return Credential("bearer", "parent-only")

    parent_thread = threading.Thread(target=lambda: cache.get("cold", 60, stuck), daemon=True)
    parent_thread.start()
    for _ in range(500):
        if cache._flights:
            break
        threading.Event().wait(0.01)
    assert "cold" in cache._flights
    cache._lock.acquire()  # as if a parent thread held it at the fork
    try:
        cache.after_fork_in_child()
        assert cache.get("warm", 60, lambda: Credential("bearer", "x")) == (warm, True)
        own, hit = cache.get("cold", 60, lambda: Credential("bearer", "own"))
        assert not hit and own.authorization == "Bearer own"
        assert cache.stats.fetches == 1 and cache.stats.hits == 1  # the child's own counters
    finally:
        release.set()
        parent_thread.join(10)


def test_after_fork_in_child_keeps_backoff_waits() -> None:
    """Workers forked from a parent whose store is down do not all retry at once."""
    clock = Clock()
    cache = CredentialCache(timer=clock, jitter=lambda: 0.0)
    store = Store(RuntimeError("store down"))
    with pytest.raises(RuntimeError):
        cache.get("k", 300, store.fetch)
    cache.after_fork_in_child()
    clock.now += 0.5
    with pytest.raises(RuntimeError):
        cache.get("k", 300, store.fetch)
    assert store.calls == 1


def test_an_interrupted_fetch_is_not_a_store_failure_and_never_served_around() -> None:
    """Ctrl-C during a fetch reaches the caller, even with a stale value, and starts no wait."""
    clock = Clock()
    cache = CredentialCache(timer=clock)
    store = Store("one", KeyboardInterrupt(), "two")
    cache.get("k", 10, store.fetch, max_stale=3600)
    clock.now += 11
    with pytest.raises(KeyboardInterrupt):
        cache.get("k", 10, store.fetch, max_stale=3600)
    cred, hit = cache.get("k", 10, store.fetch, max_stale=3600)  # no backoff wait: fetched
    assert not hit and cred.authorization == "Bearer two"
    assert cache.stats.failures == 0
