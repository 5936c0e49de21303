"""The store registry: entry points in ``mlflow_secrets_auth.backends``, loaded lazily (SPEC §12).

Listing the installed stores reads package metadata only; a store's module is imported when it
is enabled (or when ``info``/``doctor`` describe an enabled store), and its SDK only when it
fetches. A store that fails to import or is not a :class:`~.base.SecretStore` is reported with
the reason and never stops the other stores (the shape of keyring's backend discovery).
"""

from __future__ import annotations

import importlib.metadata
import threading
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..log import get_logger
from .base import ENTRY_POINT_GROUP, SecretStore

logger = get_logger(__name__)

#: Priority of the built-in stores when several are enabled (SPEC §3); others follow by name.
BUILTIN_ORDER = (
    "vault",
    "aws-secrets-manager",
    "azure-key-vault",
    "gcp-secret-manager",
    "file",
    "exec",
)
_OWN_DISTRIBUTION = "mlflow-secrets-auth"


@dataclass(frozen=True)
class StoreEntry:
    """An installed store as its package metadata describes it (nothing imported)."""

    name: str
    target: str  # "module:Class"
    distribution: str | None
    version: str | None

    @property
    def builtin(self) -> bool:
        return self.distribution == _OWN_DISTRIBUTION


class StoreUnavailableError(ConfigurationError):
    """An installed store could not be loaded (its import failed, or it is not a store)."""

    def __init__(self, entry: StoreEntry, reason: str) -> None:
        package = f" (package {entry.distribution} {entry.version})" if entry.distribution else ""
        super().__init__(
            f"the secret store {entry.name!r}{package} could not be loaded: {reason}. Reinstall "
            "or upgrade that package, or remove it from MLFLOW_SECRETS_AUTH_ENABLE",
            variable="MLFLOW_SECRETS_AUTH_ENABLE",
        )
        self.entry = entry
        self.reason = reason
        self.backend = entry.name


_lock = threading.Lock()
_entries: tuple[StoreEntry, ...] | None = None
_classes: dict[str, type[SecretStore[Any]] | StoreUnavailableError] = {}


def _priority(entry: StoreEntry) -> tuple[int, str]:
    try:
        return (BUILTIN_ORDER.index(entry.name), "")
    except ValueError:
        return (len(BUILTIN_ORDER), entry.name)


def installed_stores() -> tuple[StoreEntry, ...]:
    """Every registered store in priority order (read once per process from package metadata).

    When two packages register the same name, the built-in store wins, then the first found.
    """
    global _entries
    entries = _entries
    if entries is not None:
        return entries
    found: dict[str, StoreEntry] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(ep, "dist", None)
        entry = StoreEntry(
            ep.name.strip().lower(),
            ep.value,
            dist.metadata["Name"] if dist is not None else None,
            dist.version if dist is not None else None,
        )
        known = found.get(entry.name)
        if known is None or (entry.builtin and not known.builtin):
            found[entry.name] = entry
    entries = tuple(sorted(found.values(), key=_priority))
    with _lock:
        _entries = entries
    return entries


def store_names() -> tuple[str, ...]:
    """The names users may enable, in priority order."""
    return tuple(entry.name for entry in installed_stores())


def store_entry(name: str) -> StoreEntry | None:
    return next((e for e in installed_stores() if e.name == name), None)


def load_store(name: str) -> type[SecretStore[Any]]:
    """The store class registered as ``name``, imported on first use (its SDK is not).

    Raises StoreUnavailableError when the store cannot be loaded; the failure is remembered so
    a broken package costs one import attempt per process.
    """
    cached = _classes.get(name)
    if isinstance(cached, StoreUnavailableError):
        raise StoreUnavailableError(cached.entry, cached.reason)  # a fresh traceback
    if cached is not None:
        return cached
    entry = store_entry(name)
    if entry is None:
        raise ConfigurationError(
            f"unknown secret store {name!r}: installed stores are {', '.join(store_names())}",
            variable="MLFLOW_SECRETS_AUTH_ENABLE",
        )
    result: type[SecretStore[Any]] | StoreUnavailableError
    try:
        loaded = importlib.metadata.EntryPoint(entry.name, entry.target, ENTRY_POINT_GROUP).load()
    except Exception as error:  # a broken package must not break the others
        result = StoreUnavailableError(
            entry, f"importing {entry.target} failed with {type(error).__name__}"
        )
    else:
        if isinstance(loaded, type) and issubclass(loaded, SecretStore):
            result = loaded
        else:
            result = StoreUnavailableError(entry, f"{entry.target} is not a SecretStore subclass")
    if isinstance(result, StoreUnavailableError):
        logger.warning("%s", result)
    with _lock:
        _classes[name] = result
    if isinstance(result, StoreUnavailableError):
        raise result
    return result


def sdk_missing(store: type[SecretStore[Any]]) -> str | None:
    """Why the store's SDK cannot be imported (the pip command), or None when it can."""
    module = store.sdk_module
    if not module:
        return None
    import importlib.util

    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if found:
        return None
    install = store.sdk_install or module
    return f"{store.name} is enabled but its SDK is not installed: pip install '{install}'"


def create_store(settings: Any) -> SecretStore[Any]:
    """A store instance for these settings, with a clear error if its SDK is missing."""
    store = load_store(settings.backend_name)
    missing = sdk_missing(store)
    if missing is not None:
        raise ConfigurationError(missing, variable="MLFLOW_SECRETS_AUTH_ENABLE")
    return store(settings)


def after_fork_in_child() -> None:
    """A new lock: one held by a parent thread at fork would never be released in the child.
    What was discovered stays valid."""
    global _lock
    _lock = threading.Lock()


def reset_registry() -> None:
    """Forget what was discovered (tests that install or remove a store package)."""
    global _entries
    with _lock:
        _entries = None
        _classes.clear()
