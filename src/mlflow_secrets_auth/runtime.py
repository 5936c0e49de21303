"""The process-wide state: one cache, one backend per configuration, one auth per environment.

It is also where a forked child (multiprocessing, DataLoader workers, gunicorn) gets state of its
own (SPEC §6): see :func:`after_fork_in_child`.
"""

from __future__ import annotations

import os
import threading
import weakref

from cachetools import LRUCache

from .auth import SecretsAuth
from .backends import create_store
from .backends.base import Backend
from .cache import CacheStats, CredentialCache
from .clear_marker import MARKER
from .hosts import HostPolicy
from .log import after_fork_in_child as _log_after_fork_in_child
from .log import configure_from_env, get_logger
from .settings import BackendSettings, Settings, settings_cache
from .source import CredentialSource

logger = get_logger(__name__)

CACHE = CredentialCache()
_lock = threading.Lock()


def _close(backend: Backend) -> None:
    close = getattr(backend, "close", None)
    if close is not None:
        try:
            close()
        except Exception as error:  # closing is best effort; never fail a request over it
            logger.debug("Closing %r failed: %s", backend, type(error).__name__)


class _ClosingLRU(LRUCache[BackendSettings, Backend]):
    """Backends hold SDK clients and connection pools: close the ones that fall out."""

    def popitem(self) -> tuple[BackendSettings, Backend]:
        key, backend = super().popitem()
        _close(backend)
        return key, backend


_backends: _ClosingLRU = _ClosingLRU(maxsize=8)
_current: tuple[Settings, SecretsAuth | None] | None = None
# Every auth object handed out, also those a caller keeps (``get_auth()`` before a fork).
_auths: weakref.WeakSet[SecretsAuth] = weakref.WeakSet()
# A forked child's inherited backends: kept referenced, never used, never closed (see below).
_inherited: list[Backend] = []


def backend_for(settings: BackendSettings) -> Backend:
    """The backend instance for these settings, created once and reused (clients, logins)."""
    with _lock:
        backend = _backends.get(settings)
        if backend is None:
            backend = _backends[settings] = create_store(settings)
        return backend


def build_auth(settings: Settings) -> SecretsAuth | None:
    if settings.backend is None:
        return None
    for skipped in settings.skipped:
        logger.debug("Skipping %s: %s", getattr(skipped, "backend", "a backend"), skipped)
    general = settings.general
    source = CredentialSource(
        backend_for(settings.backend),
        settings.backend,
        CACHE,
        general.max_stale_sec,
        connect=backend_for,
    )
    policy = HostPolicy(general.allowed_hosts, general.allow_http)
    auth = SecretsAuth(source, policy, general.header_name)
    _auths.add(auth)
    return auth


def current_auth() -> SecretsAuth | None:
    """The auth object for the current environment; None when no backend is enabled.

    Raises ConfigurationError when a backend is enabled but cannot be used, so MLflow never
    sends an unauthenticated request by mistake.
    """
    global _current
    settings = settings_cache.current()
    state = _current
    if state is not None and (state[0] is settings or state[0] == settings):
        if state[0] is not settings:
            _current = (settings, state[1])
        return state[1]
    configure_from_env()
    auth = build_auth(settings)
    if auth is None:
        logger.debug(
            "No secrets backend enabled (set MLFLOW_SECRETS_AUTH_ENABLE): plugin inactive, "
            "requests are sent without plugin credentials"
        )
    else:
        logger.debug(
            "Using %s (auth_mode=%s)", auth.source.provider, auth.source.settings.auth_mode
        )
    _current = (settings, auth)
    return auth


def reset() -> None:
    """Forget every cached credential, backend and auth object (tests, `cache clear`)."""
    global _current
    CACHE.clear()
    CACHE.stats = CacheStats()
    with _lock:
        backends = list(_backends.values())
        _backends.clear()
    for backend in backends:
        _close(backend)
    _current = None


# -- processes ---------------------------------------------------------------------------------


def after_fork_in_child() -> None:
    """Give a forked child its own locks, fetches and SDK clients; keep the parent's credentials.

    Only the thread that called ``fork()`` exists in the child. A lock another thread held, or
    an in-flight fetch it was running, would block the child forever; an SDK client or
    connection pool would share sockets with the parent. So the child gets new locks, no
    flights, an empty backend table (its next fetch builds backends and clients of its own) and
    no auth object built for the parent, while cached credentials stay valid: workers forked
    from a warm parent make no fetch. The parent's backends are kept referenced but unused and
    unclosed, so no finalizer or ``close()`` in the child touches a connection the parent uses.
    """
    global _lock, _backends, _current
    CACHE.after_fork_in_child()
    _lock = threading.Lock()
    _inherited.extend(_backends.values())
    _backends = _ClosingLRU(maxsize=8)
    _current = None
    for auth in list(_auths):
        backend = auth.source.forget_backend()
        if backend is not None:
            _inherited.append(backend)
        auth.policy.after_fork_in_child()
    settings_cache.after_fork_in_child()
    MARKER.after_fork_in_child()
    _log_after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX; other platforms have no fork() to prepare for
    os.register_at_fork(
        before=CACHE.before_fork,
        after_in_parent=CACHE.after_fork_in_parent,
        after_in_child=after_fork_in_child,
    )
