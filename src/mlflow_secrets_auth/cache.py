"""Credential cache (SPEC §6).

cachetools holds the entries and evicts them; this module adds what it lacks: single flight
(one fetch for many concurrent callers), refresh ahead of expiry (requests keep using the current
value while one background fetch replaces it), stale-if-error (a failing store does not fail
requests while the last good value is within ``max_stale`` of its expiry), invalidate-if-current
(a credential rejected by many requests is dropped once), and a lock-free read for the hit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from cachetools import TLRUCache

from .credentials import Credential
from .errors import BackendError
from .log import get_logger

logger = get_logger(__name__)

#: Share of the TTL after which a value is refreshed in the background.
REFRESH_AHEAD_FRACTION = 0.8
#: After a failed refresh, wait this long (bounded by the TTL) before trying again.
RETRY_BACKOFF_SEC = 5.0


class _Entry:
    """One cached credential and its timeline (monotonic seconds)."""

    __slots__ = (
        "credential",
        "expires_at",
        "failed",
        "next_attempt",
        "refresh_at",
        "stale_until",
    )

    def __init__(self, credential: Credential, now: float, ttl: float, max_stale: float) -> None:
        self.credential = credential
        self.refresh_at = now + ttl * REFRESH_AHEAD_FRACTION
        self.expires_at = now + ttl
        self.stale_until = self.expires_at + max_stale
        self.next_attempt = self.refresh_at
        self.failed = False  # the last refresh failed: serve it stale rather than wait

    def usable(self, now: float) -> bool:
        """Before expiry; or, once the store has failed, until the stale window closes."""
        return now < self.expires_at or (self.failed and now < self.stale_until)


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


def _hard_expiry(_key: Hashable, entry: _Entry, _now: float) -> float:
    return entry.stale_until


class CredentialCache:
    """Per-process credential cache keyed by backend + secret identity."""

    def __init__(self, maxsize: int = 64, timer: Callable[[], float] = time.monotonic) -> None:
        self._entries: TLRUCache[Hashable, _Entry] = TLRUCache(maxsize, _hard_expiry, timer)
        self._timer = timer
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}
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
        started. Expired: fetched once for all callers; if that fails, the previous value is
        served until ``max_stale`` seconds past its expiry, then the error is raised.
        """
        fast = self._fast.get(key)
        if fast is not None and fast[0] == self._generation and self._timer() < fast[1].refresh_at:
            self.stats.hits += 1
            return fast[1].credential, True
        refresh: _Flight | None = None
        flight: _Flight | None = None
        leader = False
        with self._lock:
            now = self._timer()
            entry = self._entries.get(key)
            if entry is not None and now < entry.refresh_at:
                self.stats.hits += 1
                self._fast[key] = (self._generation, entry)
                return entry.credential, True
            if entry is not None and entry.usable(now):
                self.stats.hits += 1
                if now >= entry.expires_at:
                    self.stats.stale_served += 1
                if now >= entry.next_attempt and key not in self._flights:
                    refresh = self._flights[key] = _Flight()
                    entry.next_attempt = now + self._backoff(ttl)
            else:
                entry = None
                self.stats.misses += 1
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[key] = _Flight()
        if entry is not None:  # usable now: never wait on the store
            if refresh is not None:
                self._start_background(key, ttl, max_stale, fetch, refresh)
            return entry.credential, True
        assert flight is not None
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                return self._on_failure(key, ttl, flight.error)
            assert flight.result is not None
            return flight.result, False
        try:
            return self._run_flight(key, ttl, max_stale, fetch, flight), False
        except BaseException as error:
            return self._on_failure(key, ttl, error)

    # -- fetching ------------------------------------------------------------------------------

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
                self.stats.failures += 1
                self._flights.pop(key, None)
            flight.done.set()
            raise
        flight.result = credential
        with self._lock:
            self.stats.fetches += 1
            self._generation += 1  # the insert may evict other keys
            self._entries[key] = _Entry(credential, self._timer(), ttl, max_stale)
            self._flights.pop(key, None)
        flight.done.set()
        return credential

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
                with self._lock:
                    entry = self._entries.get(key)
                    if entry is not None:
                        entry.failed = True
                self._warn_stale(key, error)

        threading.Thread(target=refresh, name="mlflow-secrets-auth-refresh", daemon=True).start()

    def _on_failure(
        self, key: Hashable, ttl: float, error: BaseException
    ) -> tuple[Credential, bool]:
        """Serve the previous value if it is within its stale window; otherwise raise."""
        with self._lock:
            entry = self._entries.get(key)  # gone once past stale_until, or after invalidation
            now = self._timer()
            if entry is None or now >= entry.stale_until:
                raise error.with_traceback(error.__traceback__)
            entry.failed = True
            entry.next_attempt = now + self._backoff(ttl)
            self.stats.stale_served += 1
        self._warn_stale(key, error)
        return entry.credential, True

    @staticmethod
    def _backoff(ttl: float) -> float:
        return min(RETRY_BACKOFF_SEC, max(ttl * (1 - REFRESH_AHEAD_FRACTION), 0.05))

    def _warn_stale(self, key: Hashable, error: BaseException) -> None:
        with self._lock:
            entry = self._entries.get(key)
            now = self._timer()
        what = (
            f"{error.backend} {error.step} failed"
            if isinstance(error, BackendError)
            else (type(error).__name__)
        )
        if entry is None:
            logger.warning("Background refresh failed (%s): %s", what, error)
            return
        left = max(0.0, entry.stale_until - now)
        logger.warning(
            "Secret store unavailable (%s): still using the cached credential (fingerprint=%s) "
            "for up to %.0fs more (MLFLOW_SECRETS_MAX_STALE_SEC). Cause: %s",
            what,
            entry.credential.fingerprint,
            left,
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
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._fast.clear()
            self._generation += 1
            return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"CredentialCache(entries={len(self)}, stats={self.stats})"
