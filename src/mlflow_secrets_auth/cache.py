"""Credential cache: cachetools holds entries and expiry; this adds what it lacks — single
flight, invalidate-if-current, and a lock-free read path for the per-request hit (SPEC §6)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from cachetools import TLRUCache

from .credentials import Credential
from .log import get_logger

logger = get_logger(__name__)


@dataclass(frozen=True)
class _Entry:
    credential: Credential
    expires_at: float


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


def _expires(_key: Hashable, entry: _Entry, _now: float) -> float:
    return entry.expires_at


class CredentialCache:
    """Per-process credential cache keyed by backend + secret identity."""

    def __init__(self, maxsize: int = 64, timer: Callable[[], float] = time.monotonic) -> None:
        self._entries: TLRUCache[Hashable, _Entry] = TLRUCache(maxsize, _expires, timer)
        self._timer = timer
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}
        # Read without the lock: (generation, entry) as last seen by the locked path. Any change
        # to the store bumps the generation, which retires every fast entry at once.
        self._generation = 0
        self._fast: dict[Hashable, tuple[int, _Entry]] = {}
        self.stats = CacheStats()

    def get(
        self, key: Hashable, ttl: float, fetch: Callable[[], Credential]
    ) -> tuple[Credential, bool]:
        """The cached credential for ``key`` (and True), or one fetched once for all callers."""
        fast = self._fast.get(key)
        if fast is not None and fast[0] == self._generation and self._timer() < fast[1].expires_at:
            self.stats.hits += 1
            return fast[1].credential, True
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self.stats.hits += 1
                self._fast[key] = (self._generation, entry)
                return entry.credential, True
            self.stats.misses += 1
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error.with_traceback(None)
            assert flight.result is not None
            return flight.result, False
        try:
            credential = fetch()
        except BaseException as error:
            flight.error = error
            with self._lock:
                self.stats.failures += 1
                del self._flights[key]
            flight.done.set()
            raise
        flight.result = credential
        with self._lock:
            self.stats.fetches += 1
            self._generation += 1  # the insert may evict other keys
            self._entries[key] = _Entry(credential, self._timer() + ttl)
            del self._flights[key]
        flight.done.set()
        return credential, False

    def invalidate(self, key: Hashable, credential: Credential) -> bool:
        """Drop ``credential`` if it is still the cached one; True if this call dropped it.

        Many requests that failed with the same credential cause one drop, not one each.
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
