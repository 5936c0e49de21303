"""The store API (SPEC §12): what a secret store declares and provides.

A store is a class registered under the entry point group ``mlflow_secrets_auth.backends``
(the built-in ones too). It declares its name, the variables it reads (and their profile keys),
the SDK it needs; it loads its settings from a mapping of variable names (the environment, or a
profile table translated to those names); and it fetches the raw secret. It knows its SDK and
nothing about HTTP headers, caching or hosts: the plugin parses the payload, caches it, and
decides where it may go.

Importing a store module must not import its SDK: import it inside the methods that use it,
so that ``info`` and ``doctor`` can read the declarations of a store whose SDK is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

Payload = str | bytes | Mapping[str, object]
#: ``auto`` (the default) follows the secret's shape: username and password → basic, else bearer.
AuthMode = Literal["auto", "bearer", "basic"]

#: The entry point group through which stores are discovered.
ENTRY_POINT_GROUP = "mlflow_secrets_auth.backends"


@dataclass(frozen=True, repr=False)
class FetchedSecret:
    """A raw secret as the store returned it, plus non-secret facts about where it came from."""

    payload: Payload
    version: str | None = None
    location: str = ""
    #: When the store says this value stops being valid, in wall-clock epoch seconds (a Vault
    #: lease, an exec credential's ``expires_at``); the cache refreshes before it and never
    #: serves the value past it.
    expires_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"FetchedSecret(kind={type(self.payload).__name__}, version={self.version!r}, "
            f"location={self.location!r}, expires_at={self.expires_at!r})"
        )


@dataclass(frozen=True)
class Variable:
    """One setting a store reads: its environment variable and, if any, its profile key."""

    name: str
    #: The key in a profile table (SPEC §11); None for variables only the environment sets.
    key: str | None
    help: str
    default: str | None = None
    #: The value is a credential: masked by ``info``, refused in a profile file.
    secret: bool = False
    #: Read by the store's SDK itself rather than by the loader: watched, never parsed here.
    sdk: bool = False
    #: The variable this one is another form of (a ``*_PATH`` file instead of a secret value):
    #: a profile that sets this key does not take that variable from the environment.
    replaces: str | None = None


@dataclass(frozen=True, kw_only=True)
class StoreSettings:
    """The settings every store has; a store subclasses this (frozen, kw_only) with its own.

    Instances are hashable and compared by value: the runtime keeps one store instance per
    distinct settings object, and the cache keys credentials by ``identity`` and auth mode.
    """

    backend_name: str
    auth_mode: AuthMode = "auto"
    ttl_sec: float = 300.0
    timeout_sec: float = 10.0

    @property
    def identity(self) -> str:
        """Which secret, never how the store is logged in to: equal identities share a cache
        entry. Override it."""
        raise NotImplementedError

    def describe(self) -> str:
        """One line for ``info`` and ``doctor``: where the secret is and how it is reached."""
        return self.identity

    def endpoint(self) -> str:
        """The service the store talks to, as ``doctor`` names it ("reached …")."""
        return self.backend_name

    def location(self) -> str:
        """The secret's name or path, as ``doctor`` names it ("read …")."""
        return self.identity


@dataclass(frozen=True)
class CommonSettings:
    """What the plugin parses for every store before calling its loader."""

    backend_name: str
    auth_mode: AuthMode
    ttl_sec: float
    timeout_sec: float

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for a :class:`StoreSettings` subclass."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Advice:
    """A store-specific warning that ``doctor`` shows (e.g. a secret file readable by others)."""

    detail: str
    fix: str


S = TypeVar("S", bound=StoreSettings)


class SecretStore(Generic[S]):
    """Base class of every store. Subclass it, fill in the class attributes, and implement
    :meth:`load_settings` and :meth:`fetch`.

    ``fetch`` runs on a cache miss or a refresh, never per request. It must finish within
    ``settings.timeout_sec`` and raise :class:`~mlflow_secrets_auth.errors.BackendError`
    naming the step that failed: ``connect`` (network, TLS, timeout), ``login`` (credentials
    for the store itself) or ``read`` (the secret: not found, forbidden, deleted). Neither its
    errors nor its log records nor its repr may contain the payload.
    """

    #: The name users put in MLFLOW_SECRETS_AUTH_ENABLE (lower case, dashes).
    name: ClassVar[str]
    #: Prefix of the per-store variables the plugin parses: ``<prefix>_AUTH_MODE``,
    #: ``<prefix>_TTL_SEC``; ``MLFLOW_SECRETS_AUTH_ENABLE_<NAME>`` enables it.
    prefix: ClassVar[str]
    #: Everything :meth:`load_settings` reads, besides the plugin's common variables.
    variables: ClassVar[tuple[Variable, ...]] = ()
    default_ttl_sec: ClassVar[float] = 300.0
    #: The import name of the SDK the store needs, and the pip extra (or package) providing it.
    sdk_module: ClassVar[str | None] = None
    sdk_install: ClassVar[str | None] = None

    def __init__(self, settings: S) -> None:
        self.settings = settings

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> S:
        """Settings from ``env`` (variable names → values).

        Raise :class:`~mlflow_secrets_auth.errors.IncompleteConfigurationError` listing the
        required variables that are missing (the plugin then tries the next enabled store),
        or :class:`~mlflow_secrets_auth.errors.ConfigurationError` naming the variable whose
        value is malformed (never quoting the value).
        """
        raise NotImplementedError

    def fetch(self) -> FetchedSecret:
        raise NotImplementedError

    def advice(self) -> list[Advice]:
        """Warnings for ``doctor`` that do not stop the store from working (default: none)."""
        return []

    def close(self) -> None:
        """Release SDK clients and connection pools (the runtime calls it when it drops the
        store)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.settings.describe()})"


class Backend(Protocol):
    """What the cache-facing code needs of a store: a name and ``fetch()``."""

    @property
    def name(self) -> str: ...

    def fetch(self) -> FetchedSecret: ...
