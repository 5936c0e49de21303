"""Credential cache (SPEC §6).

cachetools holds the entries and evicts them; this module adds what it lacks: single flight
(one fetch for many concurrent callers), refresh ahead of expiry (requests keep using the current
value while one background fetch replaces it), a lifetime shortened by the credential's own
expiry (a JWT's ``exp``, a store-given expiry) past which it is never served, stale-if-error (a
failing store does not fail requests while the last good value is within ``max_stale`` of its
expiry), exponential backoff with jitter between failed attempts (never one attempt per request),
invalidate-if-current (a credential rejected by many requests is dropped once), a lock-free read
for the hit, and a reset for a forked child (its parent's locks and in-flight fetches are not its
own; its cached credentials are).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from types import TracebackType
from typing import NoReturn

from cachetools import TLRUCache

from .credentials import Credential
from .errors import BackendError
from .log import get_logger

logger = get_logger(__name__)

#: Share of a credential's own lifetime (up to its ``expires_at``) after which it is refreshed:
#: past that expiry it no longer works, so the rest is time for retries.
REFRESH_AHEAD_FRACTION = 0.8
#: A TTL is a freshness policy, not an expiry: the old value keeps working past it. So a TTL-bound
#: entry is refreshed this long before the TTL ends (at 80% of short TTLs), enough for one fetch
#: within ``MLFLOW_SECRETS_TIMEOUT_SEC``, and a long TTL costs one read per TTL, not 1.25.
REFRESH_AHEAD_MAX_SEC = 15.0
#: Backoff after a failed fetch: the first wait is at most this long ...
BACKOFF_FIRST_SEC = 1.0
#: ... and at most this share of the TTL (short TTLs retry sooner) ...
BACKOFF_TTL_FRACTION = 0.2
#: ... then doubles with each further failure up to this cap, until a fetch succeeds.
BACKOFF_MAX_SEC = 60.0
#: Each wait is shortened by a random share of up to this much, so that processes that failed
#: together (workers forked from one parent) do not retry together; it only shortens, so the
#: bounds above hold and a store down for an hour sees under 70 attempts per process.
BACKOFF_JITTER = 0.1
#: The smallest wait, for TTLs so short that 20% of them is next to nothing.
_BACKOFF_FLOOR_SEC = 0.01


def backoff_delay(ttl: float, failures: int, draw: float) -> float:
    """The wait after ``failures`` consecutive failed fetches (``draw`` uniform in [0, 1)).

    The nominal wait starts at min(1 s, 0.2 × TTL) and doubles up to 60 s; the jitter takes up
    to 10% off it.
    """
    first = max(min(BACKOFF_FIRST_SEC, BACKOFF_TTL_FRACTION * ttl), _BACKOFF_FLOOR_SEC)
    nominal = min(BACKOFF_MAX_SEC, first * 2.0 ** min(max(failures - 1, 0), 32))
    return nominal * (1.0 - BACKOFF_JITTER * draw)


class _Entry:
    """One cached credential and its timeline (monotonic seconds)."""

    __slots__ = ("credential", "expires_at", "refresh_at", "stale_until")

    def __init__(
        self, credential: Credential, refresh_at: float, expires_at: float, stale_until: float
    ) -> None:
        self.credential = credential
        self.refresh_at = refresh_at  # from here on one background fetch replaces it
        self.expires_at = expires_at  # from here on it is served only while the store fails
        self.stale_until = stale_until  # never served from here on (evicted by the TLRU cache)


class _Retry:
    """The failures since the last successful fetch of one key: when the store may be tried."""

    __slots__ = ("error", "failures", "next_attempt", "traceback")

    def __init__(self) -> None:
        self.failures = 0
        self.next_attempt = 0.0
        self.error: Exception | None = None
        self.traceback: TracebackType | None = None


class _Refusal:
    """A copy, taken under the lock, of the failure that callers in a backoff wait get again."""

    __slots__ = ("error", "failures", "traceback", "wait")

    def __init__(self, retry: _Retry, now: float) -> None:
        assert retry.error is not None
        self.error, self.traceback = retry.error, retry.traceback
        self.failures = retry.failures
        self.wait = max(0.0, retry.next_attempt - now)

    def raise_again(self) -> NoReturn:
        logger.debug(
            "Not calling the secret store: it failed %d time(s) in a row, next attempt in %.1fs",
            self.failures,
            self.wait,
        )
        raise self.error.with_traceback(self.traceback)


class _Flight:
    """One in-progress fetch that concurrent callers wait on instead of starting their own."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: Credential | None = None
        self.error: BaseException | None = None


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    fetches: int = 0
    failures: int = 0
    invalidations: int = 0
    background_refreshes: int = 0
    stale_served: int = 0
    #: Calls to the store, successful or not (fetches + failures + any in flight).
    attempts: int = 0
    #: Attempts made after a failure, each one backoff wait after the previous.
    retries: int = 0
    #: Requests answered with the last error, without a store call, during a backoff wait.
    backoff_refusals: int = 0


def _hard_expiry(_key: Hashable, entry: _Entry, _now: float) -> float:
    return entry.stale_until


class CredentialCache:
    """Per-process credential cache keyed by backend + secret identity.

    ``timer`` (monotonic seconds) orders everything; ``wall`` (epoch seconds) converts a
    credential's own ``expires_at`` onto that timeline; ``jitter`` draws the backoff jitter
    (uniform in [0, 1)). Tests inject all three.
    """

    def __init__(
        self,
        maxsize: int = 64,
        timer: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._entries: TLRUCache[Hashable, _Entry] = TLRUCache(maxsize, _hard_expiry, timer)
        self._timer = timer
        self._wall = wall
        self._jitter = jitter
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}
        self._retries: dict[Hashable, _Retry] = {}
        # Read without the lock: (generation, entry) as last seen by the locked path. Any change
        # to the store bumps the generation, which retires every fast entry at once.
        self._generation = 0
        self._fast: dict[Hashable, tuple[int, _Entry]] = {}
        self.stats = CacheStats()

    def get(
        self,
        key: Hashable,
        ttl: float,
        fetch: Callable[[], Credential],
        max_stale: float = 0.0,
    ) -> tuple[Credential, bool]:
        """The credential for ``key`` and whether it came from the cache.

        Fresh: returned at once. Due for refresh: returned at once, one background fetch
        started (unless a backoff wait after a failure is still running). Expired: fetched once
        for all callers; if that fails, the previous value is served until ``max_stale``
        seconds past its expiry (never past the credential's own expiry), then the error is
        raised. With no value to serve, callers during a backoff wait get the last error at once.
        """
        fast = self._fast.get(key)
        if fast is not None and fast[0] == self._generation and self._timer() < fast[1].refresh_at:
            self.stats.hits += 1
            return fast[1].credential, True
        refresh: _Flight | None = None
        flight: _Flight | None = None
        refused: _Refusal | None = None
        leader = False
        with self._lock:
            now = self._timer()
            entry = self._entries.get(key)
            if entry is not None and now < entry.refresh_at:
                self.stats.hits += 1
                self._fast[key] = (self._generation, entry)
                return entry.credential, True
            retry = self._retries.get(key)
            if entry is not None and (
                now < entry.expires_at or (retry is not None and now < entry.stale_until)
            ):
                self.stats.hits += 1
                if now >= entry.expires_at:
                    self.stats.stale_served += 1
                if key not in self._flights and (retry is None or now >= retry.next_attempt):
                    refresh = self._flights[key] = self._take_off(retry)
            else:
                entry = None
                self.stats.misses += 1
                flight = self._flights.get(key)
                if flight is None and retry is not None and now < retry.next_attempt:
                    self.stats.backoff_refusals += 1
                    refused = _Refusal(retry, now)
                elif flight is None:
                    leader = True
                    flight = self._flights[key] = self._take_off(retry)
        if entry is not None:  # usable now: never wait on the store
            if refresh is not None:
                self._start_background(key, ttl, max_stale, fetch, refresh)
            return entry.credential, True
        if refused is not None:
            refused.raise_again()
        assert flight is not None
        if not leader:
            flight.done.wait()
            if isinstance(flight.error, Exception):
                return self._on_failure(key, flight.error)
            if flight.error is not None:  # the leader was interrupted (KeyboardInterrupt): not
                return self.get(key, ttl, fetch, max_stale)  # a store failure; fetch anew
            assert flight.result is not None
            return flight.result, False
        try:
            return self._run_flight(key, ttl, max_stale, fetch, flight), False
        except Exception as error:
            return self._on_failure(key, error)

    # -- fetching ------------------------------------------------------------------------------

    def _take_off(self, retry: _Retry | None) -> _Flight:
        """A new flight, counted (caller holds the lock)."""
        self.stats.attempts += 1
        if retry is not None:
            self.stats.retries += 1
        return _Flight()

    def _schedule(self, credential: Credential, now: float, ttl: float, max_stale: float) -> _Entry:
        """The entry's timeline: the TTL, shortened by the credential's own expiry if sooner."""
        expires_at = now + ttl
        refresh_at = expires_at - min(ttl * (1 - REFRESH_AHEAD_FRACTION), REFRESH_AHEAD_MAX_SEC)
        stale_until = expires_at + max_stale
        if credential.expires_at is not None:
            own = max(0.0, credential.expires_at - self._wall())  # seconds it still works
            expires_at = min(expires_at, now + own)
            refresh_at = min(refresh_at, now + own * REFRESH_AHEAD_FRACTION)
            stale_until = min(stale_until, now + own)
        return _Entry(credential, refresh_at, expires_at, stale_until)

    def _run_flight(
        self,
        key: Hashable,
        ttl: float,
        max_stale: float,
        fetch: Callable[[], Credential],
        flight: _Flight,
    ) -> Credential:
        try:
            credential = fetch()
        except BaseException as error:
            flight.error = error
            with self._lock:
                if isinstance(error, Exception):  # not an interruption of this process
                    self.stats.failures += 1
                    self._record_failure(key, ttl, error)
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.done.set()
            raise
        flight.result = credential
        with self._lock:
            self.stats.fetches += 1
            self._retries.pop(key, None)  # a success ends the backoff
            self._generation += 1  # the insert may evict other keys
            self._entries[key] = self._schedule(credential, self._timer(), ttl, max_stale)
            if self._flights.get(key) is flight:
                del self._flights[key]
        flight.done.set()
        return credential

    def _record_failure(self, key: Hashable, ttl: float, error: Exception) -> None:
        """Schedule the next attempt one backoff wait away (caller holds the lock)."""
        retry = self._retries.get(key)
        if retry is None:
            retry = self._retries[key] = _Retry()
        retry.failures += 1
        retry.next_attempt = self._timer() + backoff_delay(ttl, retry.failures, self._jitter())
        retry.error, retry.traceback = error, error.__traceback__

    def _start_background(
        self,
        key: Hashable,
        ttl: float,
        max_stale: float,
        fetch: Callable[[], Credential],
        flight: _Flight,
    ) -> None:
        def refresh() -> None:
            try:
                self._run_flight(key, ttl, max_stale, fetch, flight)
                with self._lock:
                    self.stats.background_refreshes += 1
            except BaseException as error:
                self._warn_stale(key, error)

        threading.Thread(target=refresh, name="mlflow-secrets-auth-refresh", daemon=True).start()

    def _on_failure(self, key: Hashable, error: Exception) -> tuple[Credential, bool]:
        """Serve the previous value if it is within its stale window; otherwise raise."""
        with self._lock:
            entry = self._entries.get(key)  # gone once past stale_until, or after invalidation
            now = self._timer()
            if entry is None or now >= entry.stale_until:
                raise error.with_traceback(error.__traceback__)
            self.stats.stale_served += 1
        self._warn_stale(key, error)
        return entry.credential, True

    def _warn_stale(self, key: Hashable, error: BaseException) -> None:
        with self._lock:
            entry = self._entries.get(key)
            retry = self._retries.get(key)
            now = self._timer()
        what = (
            f"{error.backend} {error.step} failed"
            if isinstance(error, BackendError)
            else (type(error).__name__)
        )
        again = max(0.0, retry.next_attempt - now) if retry is not None else 0.0
        if entry is None:
            logger.warning(
                "Background refresh failed (%s), retrying in %.1fs: %s", what, again, error
            )
            return
        left = max(0.0, entry.stale_until - now)
        logger.warning(
            "Secret store unavailable (%s): still using the cached credential (fingerprint=%s) "
            "for up to %.0fs more (MLFLOW_SECRETS_MAX_STALE_SEC, or until the credential's own "
            "expiry); retrying in %.1fs. Cause: %s",
            what,
            entry.credential.fingerprint,
            left,
            again,
            error,
        )

    # -- invalidation --------------------------------------------------------------------------

    def invalidate(self, key: Hashable, credential: Credential) -> bool:
        """Drop ``credential`` if it is still the cached one; True if this call dropped it.

        Many requests that failed with the same credential cause one drop, not one each. A
        dropped credential is never served stale: the server has rejected it.
        """
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.credential is not credential:
                return False
            del self._entries[key]
            self._generation += 1
            self.stats.invalidations += 1
            return True

    def clear(self) -> int:
        """Drop every credential and every backoff wait (`cache clear`: start over)."""
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._retries.clear()
            self._fast.clear()
            self._generation += 1
            return count

    # -- processes -----------------------------------------------------------------------------

    def before_fork(self) -> None:
        """Hold the lock across ``fork()``, so the child copies the entries between changes.

        The lock is never held while a store is called, so this waits for microseconds at most.
        """
        self._lock.acquire()

    def after_fork_in_parent(self) -> None:
        self._lock.release()

    def after_fork_in_child(self) -> None:
        """Keep the parent's credentials and backoff waits; drop what belonged to its threads.

        The threads that held the lock, ran the in-flight fetches and waited on them do not
        exist in the child: a new lock, no flights (the child makes its own fetch when one is
        due, instead of waiting forever on an event nobody will set) and its own counters.
        """
        self._lock = threading.Lock()
        self._flights = {}
        self._fast = {}
        self._generation += 1
        self.stats = CacheStats()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"CredentialCache(entries={len(self)}, stats={self.stats})"
