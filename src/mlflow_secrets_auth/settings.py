"""General policy from the environment (SPEC §2, §5, §6) and the choice of store.

What belongs to one store (its variables, settings and loader) lives in that store's module;
this module keeps what every store shares: which stores are enabled, where credentials may go,
the time bound and the stale window, and the common per-store ``<PREFIX>_AUTH_MODE`` and
``<PREFIX>_TTL_SEC`` it parses before calling a store's loader.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .backends import BUILTIN_ORDER, StoreUnavailableError, load_store, store_entry, store_names
from .backends.base import AuthMode, CommonSettings, StoreSettings
from .errors import ConfigurationError, IncompleteConfigurationError
from .hosts import HostRule, parse_allowed_hosts
from .values import flag, seconds, text

BackendName = str
BackendSettings = StoreSettings

ENABLE_VARIABLE = "MLFLOW_SECRETS_AUTH_ENABLE"
DEFAULT_TIMEOUT_SEC = 10.0
DEFAULT_MAX_STALE_SEC = 3600.0
_HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_AUTH_MODES: tuple[AuthMode, ...] = ("auto", "bearer", "basic")

GENERAL_VARIABLES: tuple[str, ...] = (
    ENABLE_VARIABLE,
    "MLFLOW_SECRETS_ALLOWED_HOSTS",
    "MLFLOW_SECRETS_ALLOW_HTTP",
    "MLFLOW_AUTH_HEADER_NAME",
    "MLFLOW_SECRETS_TIMEOUT_SEC",
    "MLFLOW_SECRETS_MAX_STALE_SEC",
    "MLFLOW_SECRETS_LOG_LEVEL",
)
#: Read elsewhere (the cache-clear marker's directory), listed so `info` shows it.
OTHER_VARIABLES: tuple[str, ...] = ("MLFLOW_SECRETS_CACHE_DIR",)


@dataclass(frozen=True)
class GeneralSettings:
    """Policy shared by every store."""

    enabled: tuple[BackendName, ...] = ()
    allowed_hosts: tuple[HostRule, ...] | None = None  # None: the tracking/registry origins
    allow_http: bool = False
    header_name: str | None = None
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    max_stale_sec: float = DEFAULT_MAX_STALE_SEC


@dataclass(frozen=True)
class Settings:
    """The environment's own configuration: the general policy and the store it selects."""

    general: GeneralSettings
    backend: BackendSettings | None
    #: Enabled stores passed over: configuration incomplete, or the store failed to load.
    skipped: tuple[ConfigurationError, ...] = ()


# --- which variables ---------------------------------------------------------------------------


def enable_flag(name: str) -> str:
    """``MLFLOW_SECRETS_AUTH_ENABLE_<NAME>``: the per-store switch (SPEC §2)."""
    return f"{ENABLE_VARIABLE}_{name.upper().replace('-', '_')}"


def store_prefix(name: BackendName) -> str:
    """The prefix of a store's common variables, e.g. ``MLFLOW_VAULT``."""
    return load_store(name).prefix


def store_variables(name: BackendName) -> tuple[str, ...]:
    """What store ``name`` reads: its declared variables and ``<prefix>_AUTH_MODE``/``_TTL_SEC``."""
    store = load_store(name)
    return (
        *(v.name for v in store.variables),
        f"{store.prefix}_AUTH_MODE",
        f"{store.prefix}_TTL_SEC",
    )


def known_variables(enabled: tuple[BackendName, ...] | None = None) -> tuple[str, ...]:
    """Every variable the plugin reads for these stores (default: the built-in ones).

    Only stores that are enabled, or built in, are imported to ask: a third-party store
    package is never imported just to list its variables.
    """
    names = BUILTIN_ORDER if enabled is None else enabled
    enable_flags = tuple(enable_flag(n) for n in store_names())
    found: list[str] = [*GENERAL_VARIABLES, *enable_flags]
    for name in names:
        try:
            found.extend(store_variables(name))
        except ConfigurationError:
            continue  # a broken or missing store: reported elsewhere
    found.extend(OTHER_VARIABLES)
    return tuple(dict.fromkeys(found))


def watched_variables(enabled: tuple[BackendName, ...] | None) -> tuple[str, ...]:
    """What can change the outcome: the general variables and those of enabled stores."""
    return known_variables(enabled)


# --- parsing -----------------------------------------------------------------------------------


def parse_auth_mode(env: Mapping[str, str], name: str) -> AuthMode:
    """``auto`` (the default: basic for a username/password secret, bearer otherwise),
    ``bearer`` or ``basic``."""
    raw = text(env, name)
    if raw is None:
        return "auto"
    for mode in _AUTH_MODES:
        if raw.lower() == mode:
            return mode
    raise ConfigurationError(
        f"{name} is not an auth mode: use 'auto' (the default: basic for a username/password "
        "secret, bearer otherwise), 'bearer' or 'basic'",
        variable=name,
    )


def parse_enabled(env: Mapping[str, str]) -> tuple[BackendName, ...]:
    """MLFLOW_SECRETS_AUTH_ENABLE plus the per-store flags, in priority order (SPEC §2)."""
    names = store_names()
    wanted: set[str] = set()
    raw = env.get(ENABLE_VARIABLE) or ""
    for item in raw.split(","):
        name = item.strip().lower().replace("_", "-")
        if not name:
            continue
        if name not in names:
            raise ConfigurationError(
                f"{ENABLE_VARIABLE} names an unknown backend {item.strip()!r}: "
                f"valid names are {', '.join(names)}",
                variable=ENABLE_VARIABLE,
            )
        wanted.add(name)
    for name in names:
        if flag(env, enable_flag(name), False):
            wanted.add(name)
    return tuple(name for name in names if name in wanted)


def load_general(env: Mapping[str, str]) -> GeneralSettings:
    header = text(env, "MLFLOW_AUTH_HEADER_NAME")
    if header is not None and not _HEADER_TOKEN.match(header):
        raise ConfigurationError(
            f"MLFLOW_AUTH_HEADER_NAME={header!r} is not a valid HTTP header name: use letters, "
            "digits and '-', e.g. X-Api-Key",
            variable="MLFLOW_AUTH_HEADER_NAME",
        )
    raw_hosts = env.get("MLFLOW_SECRETS_ALLOWED_HOSTS")
    return GeneralSettings(
        enabled=parse_enabled(env),
        allowed_hosts=None if raw_hosts is None else parse_allowed_hosts(raw_hosts),
        allow_http=flag(env, "MLFLOW_SECRETS_ALLOW_HTTP", False),
        header_name=header,
        timeout_sec=seconds(
            env, "MLFLOW_SECRETS_TIMEOUT_SEC", DEFAULT_TIMEOUT_SEC, allow_zero=False
        ),
        max_stale_sec=seconds(
            env, "MLFLOW_SECRETS_MAX_STALE_SEC", DEFAULT_MAX_STALE_SEC, allow_zero=True
        ),
    )


def load_store_settings(
    name: BackendName, env: Mapping[str, str], general: GeneralSettings
) -> BackendSettings:
    """One store's settings from ``env``, through the loader that store declares."""
    store = load_store(name)
    prefix = store.prefix
    common = CommonSettings(
        backend_name=name,
        auth_mode=parse_auth_mode(env, f"{prefix}_AUTH_MODE"),
        ttl_sec=seconds(env, f"{prefix}_TTL_SEC", store.default_ttl_sec, allow_zero=False),
        timeout_sec=general.timeout_sec,
    )
    try:
        settings: StoreSettings = store.load_settings(env, common)
    except ConfigurationError:
        raise
    except Exception as error:  # a broken store package must not break the others
        entry = store_entry(name)
        assert entry is not None
        raise StoreUnavailableError(
            entry, f"its settings loader failed with {type(error).__name__}"
        ) from None
    return settings


def load_settings(env: Mapping[str, str]) -> Settings:
    """The environment's configuration: the first enabled store whose configuration is
    complete is chosen (SPEC §2); an incomplete or broken one is passed over."""
    general = load_general(env)
    skipped: list[ConfigurationError] = []
    for name in general.enabled:
        try:
            backend = load_store_settings(name, env, general)
        except (IncompleteConfigurationError, StoreUnavailableError) as passed_over:
            skipped.append(passed_over)  # a broken store package never stops the others
            continue
        return Settings(general=general, backend=backend, skipped=tuple(skipped))
    if skipped:
        detail = "; ".join(str(s) for s in skipped)
        raise ConfigurationError(
            f"no enabled backend is fully configured ({detail})", variable=skipped[0].variable
        )
    return Settings(general=general, backend=None)
