"""The process-wide state: one cache, one backend per store configuration, one auth object per
configuration (the environment and the profiles file).

It is also where a forked child (multiprocessing, DataLoader workers, gunicorn) gets state of its
own (SPEC §6): see :func:`after_fork_in_child`.
"""

from __future__ import annotations

import os
import threading
import weakref

from cachetools import LRUCache

from .auth import PluginAuth, ProfileAuth, SecretsAuth
from .backends import after_fork_in_child as registry_after_fork_in_child
from .backends import create_store
from .backends.base import Backend
from .cache import CacheStats, CredentialCache
from .clear_marker import MARKER
from .hosts import HostPolicy
from .log import after_fork_in_child as _log_after_fork_in_child
from .log import configure_from_env, get_logger
from .profiles import ENV_PROFILE, Configuration, Profile, configuration_cache, profile_file
from .settings import BackendSettings, GeneralSettings
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
_current: tuple[Configuration, PluginAuth | None] | None = None
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


def profile_auth(profile: Profile, general: GeneralSettings) -> SecretsAuth:
    """The auth object for one profile: its store behind the shared cache, its host rules.

    The ``env`` profile's store is created now, so a missing SDK fails the first request as it
    always did; a file profile's store is created at its first fetch, so one profile's missing
    SDK never stops the others.
    """
    settings = profile.settings
    backend = backend_for(settings) if profile.rules is None else None
    source = CredentialSource(
        backend, settings, CACHE, profile.max_stale_sec, connect=backend_for, profile=profile.name
    )
    rules = general.allowed_hosts if profile.rules is None else profile.rules
    auth = SecretsAuth(source, HostPolicy(rules, profile.allow_http), profile.header_name)
    _auths.add(auth)
    return auth


def build_auth(configuration: Configuration) -> PluginAuth | None:
    profiles = configuration.profiles
    for skipped in profiles.env_skipped:
        logger.debug("Skipping %s: %s", getattr(skipped, "backend", "a backend"), skipped)
    if not profiles.profiles:
        return None
    auths = {p.name: profile_auth(p, configuration.general) for p in profiles.profiles}
    if tuple(auths) == (ENV_PROFILE,):
        return auths[ENV_PROFILE]  # the environment alone: one credential, as always
    return ProfileAuth(profiles, auths)


def current_auth() -> PluginAuth | None:
    """The auth object for the current configuration; None when nothing is enabled.

    Raises ConfigurationError when a store is enabled but cannot be used, or the profiles file
    is wrong, so MLflow never sends an unauthenticated request by mistake.
    """
    global _current
    configuration = configuration_cache.current()
    state = _current
    if state is not None and state[0] is configuration:
        return state[1]
    configure_from_env()
    auth = build_auth(configuration)
    if auth is None:
        logger.debug(
            "No secrets backend enabled (set MLFLOW_SECRETS_AUTH_ENABLE or define profiles in "
            "%s): plugin inactive, requests are sent without plugin credentials",
            configuration.profiles.path,
        )
    elif isinstance(auth, ProfileAuth):
        logger.debug(
            "Using %s",
            "; ".join(
                f"profile {name}: {a.source.provider} (auth_mode={a.source.settings.auth_mode})"
                for name, a in auth.auths.items()
            ),
        )
    else:
        logger.debug(
            "Using %s (auth_mode=%s)", auth.source.provider, auth.source.settings.auth_mode
        )
    _current = (configuration, auth)
    return auth


def reset() -> None:
    """Forget every cached credential, backend and auth object (tests, `cache clear`)."""
    global _current
    CACHE.clear()
    CACHE.stats = CacheStats()
    configuration_cache.reset()
    profile_file.reset()
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
    configuration_cache.after_fork_in_child()
    registry_after_fork_in_child()
    MARKER.after_fork_in_child()
    _log_after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX; other platforms have no fork() to prepare for
    os.register_at_fork(
        before=CACHE.before_fork,
        after_in_parent=CACHE.after_fork_in_parent,
        after_in_child=after_fork_in_child,
    )
