"""Credential cache: cachetools holds entries and expiry; this adds single flight and
invalidate-if-current (SPEC §6)."""

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
    ttl: float


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


def _expires(_key: Hashable, entry: _Entry, now: float) -> float:
    return now + entry.ttl


class CredentialCache:
    """Per-process credential cache keyed by backend + secret identity."""

    def __init__(self, maxsize: int = 64, timer: Callable[[], float] = time.monotonic) -> None:
        self._entries: TLRUCache[Hashable, _Entry] = TLRUCache(maxsize, _expires, timer)
        self._lock = threading.Lock()
        self._flights: dict[Hashable, _Flight] = {}
        self.stats = CacheStats()

    def get(
        self, key: Hashable, ttl: float, fetch: Callable[[], Credential]
    ) -> tuple[Credential, bool]:
        """The cached credential for ``key`` (and True), or one fetched once for all callers."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self.stats.hits += 1
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
            self._entries[key] = _Entry(credential, ttl)
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
            self.stats.invalidations += 1
            return True

    def clear(self) -> int:
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            return count

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __repr__(self) -> str:
        return f"CredentialCache(entries={len(self)}, stats={self.stats})"
