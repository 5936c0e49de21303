"""Profiles (SPEC §11): the configuration file, the implicit ``env`` profile, origin → profile.

A profile is one credential and the hosts it may go to. The TOML file at
``MLFLOW_SECRETS_CONFIG`` (else ``$XDG_CONFIG_HOME/mlflow-secrets-auth/config.toml``) holds
``[profiles.NAME]`` tables and a ``[defaults]`` table; the environment alone forms the profile
``env``, which serves the hosts no file profile names. The file is read on first use, never at
import, and read again when it changes (checked at most once a second, :class:`ProfileFile`).

Where a file profile's store settings come from. A profile table is translated to the store's
variable names through the ``Variable.key`` each store declares (``secret_name`` →
``MLFLOW_AWS_SECRET_NAME``; ``auth_mode``/``ttl_sec`` → ``<PREFIX>_AUTH_MODE``/``_TTL_SEC``),
and the store's own loader builds the settings, so validation is the store's own. The mapping
given to the loader is::

    {variables the store marks secret=True or sdk=True, from the real environment}
    ∪ {the profile's keys (over [defaults]), translated}

- The file says *which* secret and where the store is; it never holds a credential. Keys that
  would (``token``, ``secret_id``, ``password``, ``*_token``, ``*_secret``, a key the store marks
  secret, …) are refused, naming the environment variable or the ``*_path`` key to use.
- So the store's own login comes from the environment and the SDK's chain: variables marked
  ``secret`` (``VAULT_TOKEN``, ``VAULT_SECRET_ID``) or ``sdk`` (``AWS_PROFILE``,
  ``AZURE_CLIENT_ID``, …) are taken from the environment for every file profile of that store,
  unless the store also gives them a profile key and the profile sets it.
- Nothing else is taken from the environment. A variable with a profile key (``VAULT_ADDR``,
  ``MLFLOW_AWS_SECRET_NAME``, ``<PREFIX>_TTL_SEC``) belongs to the ``env`` profile; an
  environment-only alias or fallback without a key (``MLFLOW_AWS_SECRET_ID``,
  ``AZURE_KEY_VAULT_URL``, ``AWS_DEFAULT_REGION``) too: taken from the environment, it would
  fill a gap in a file profile with the ``env`` profile's secret and send that credential to
  the file profile's hosts. A file profile names its secret itself (or through [defaults]).
- ``header_name`` and ``allow_http`` come from the profile or [defaults] only
  (``MLFLOW_AUTH_HEADER_NAME``/``MLFLOW_SECRETS_ALLOW_HTTP`` are the ``env`` profile's);
  ``timeout_sec`` from the profile or [defaults] and ``max_stale_sec`` from [defaults] (it is
  per cache entry, which profiles may share), else the environment's.
- Identity (the cache key) is the store's: it names the secret, not the profile, so two
  profiles naming the same secret share one cache entry.
"""

from __future__ import annotations

import dataclasses
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .backends import StoreUnavailableError, load_store, store_names
from .backends.base import Variable
from .environment import encode_names, snapshot
from .environment import raw_value as environment_get
from .errors import ConfigurationError, IncompleteConfigurationError
from .hosts import PROXY_VARIABLES, HostRule, parse_rule
from .log import get_logger
from .settings import (
    BackendSettings,
    GeneralSettings,
    load_general,
    load_store_settings,
    parse_enabled,
    store_prefix,
    watched_variables,
)
from .values import text

logger = get_logger(__name__)

CONFIG_VARIABLE = "MLFLOW_SECRETS_CONFIG"
PROFILE_VARIABLE = "MLFLOW_SECRETS_PROFILE"
ENV_PROFILE = "env"
#: The file is checked for changes at most this often (seconds).
CHECK_INTERVAL_SEC = 1.0
#: Environment variables that decide which file is read and which profiles are used.
FILE_VARIABLES: tuple[str, ...] = (CONFIG_VARIABLE, "XDG_CONFIG_HOME", "HOME", PROFILE_VARIABLE)

# Keys every profile may set, and the general variable each is validated as.
_GENERAL_KEYS = {
    "timeout_sec": "MLFLOW_SECRETS_TIMEOUT_SEC",
    "max_stale_sec": "MLFLOW_SECRETS_MAX_STALE_SEC",
    "header_name": "MLFLOW_AUTH_HEADER_NAME",
    "allow_http": "MLFLOW_SECRETS_ALLOW_HTTP",
}
_STORE_COMMON_KEYS = {"auth_mode": "_AUTH_MODE", "ttl_sec": "_TTL_SEC"}
_COMMON_KEYS = frozenset({"hosts", "backend", *_GENERAL_KEYS, *_STORE_COMMON_KEYS})

_SECRET_KEYS = frozenset(
    {
        "token",
        "secret",
        "secret_id",
        "password",
        "client_secret",
        "jwt_token",
        "api_key",
        "access_key",
        "secret_access_key",
        "private_key",
    }
)
_SECRET_SUFFIXES = ("_token", "_password", "_secret", "_api_key", "_access_key", "_private_key")
_SAFE_SUFFIXES = ("_path", "_file")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_VARIABLE_NAME = re.compile(r"[A-Z][A-Z0-9_]*[A-Z0-9]")
_TOML_POSITION = re.compile(r"^(.*) \(at (?:line (\d+), column (\d+)|end of document)\)$", re.S)
_SELECT_CACHE_SIZE = 256


class ProfileError(ConfigurationError):
    """The configuration file, or the profile selection, is wrong: the message names the file,
    the profile and the key (never a value that could be secret)."""

    def __init__(
        self,
        message: str,
        *,
        path: Path | None,
        profile: str | None = None,
        key: str | None = None,
        variable: str = CONFIG_VARIABLE,
    ) -> None:
        super().__init__(message, variable=variable)
        self.path = path
        self.profile = profile
        self.key = key


@dataclass(frozen=True)
class Profile:
    """One credential and where it may go."""

    name: str
    #: The host rules from the file; None for the ``env`` profile, whose hosts are decided at
    #: request time (MLFLOW_SECRETS_ALLOWED_HOSTS or the tracking/registry origins).
    rules: tuple[HostRule, ...] | None
    settings: BackendSettings
    header_name: str | None
    allow_http: bool
    #: Where it was defined: ``file PATH`` or ``environment``.
    origin_text: str
    max_stale_sec: float

    @property
    def backend(self) -> str:
        return self.settings.backend_name


@dataclass(frozen=True, eq=False)
class ConfigDocument:
    """One read of the configuration file; a new object each time the file changed."""

    path: Path
    explicit: bool  # named by MLFLOW_SECRETS_CONFIG
    data: Mapping[str, Any] | None  # None: no file at the default path


def config_path(env: Mapping[str, str]) -> Path:
    """``MLFLOW_SECRETS_CONFIG``, else ``$XDG_CONFIG_HOME/mlflow-secrets-auth/config.toml``."""
    named = text(env, CONFIG_VARIABLE)
    if named is not None:
        return Path(named).expanduser().absolute()
    xdg = text(env, "XDG_CONFIG_HOME")
    if xdg is not None and Path(xdg).is_absolute():  # the XDG spec ignores relative values
        base = Path(xdg)
    else:
        home = text(env, "HOME")
        base = (Path(home) if home else Path.home()) / ".config"
    return base / "mlflow-secrets-auth" / "config.toml"


def config_is_explicit(env: Mapping[str, str]) -> bool:
    """A file named by ``MLFLOW_SECRETS_CONFIG`` must exist; the default one need not."""
    return text(env, CONFIG_VARIABLE) is not None


# --- reading the file ----------------------------------------------------------------------

_Signature = tuple[int, ...] | None


def _signature(path: Path) -> _Signature:
    """What changes when the file is edited or replaced; None when there is no file."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        return (-1, error.errno or 0)  # unreadable: read_document reports it
    return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_dev)


def _toml_loads(source: str) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]
    result: dict[str, Any] = tomllib.loads(source)
    return result


def _toml_error(path: Path, source: str, error: ValueError) -> ProfileError:
    """The file and the line of a syntax error; no character of the file is quoted."""
    said = str(error)
    match = _TOML_POSITION.match(said)
    detail = match.group(1) if match else said
    if match and match.group(2):
        where = f"line {match.group(2)}, column {match.group(3)}"
    else:  # tomllib says "end of document": name its last line
        where = f"line {len(source.splitlines()) or 1} (end of file)"
    if detail.startswith(("Found invalid character", "Illegal character")):
        detail = detail.split(" character", 1)[0] + " character"  # not the character itself
    return ProfileError(
        f"{path}: {where}: TOML syntax error: {detail}. Fix the file (TOML: https://toml.io), "
        f"or point {CONFIG_VARIABLE} at another one",
        path=path,
    )


def read_document(path: Path, *, explicit: bool) -> ConfigDocument:
    """Read and parse the file (no caching: :class:`ProfileFile` caches)."""
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        if not explicit:
            logger.debug("No configuration file at %s: profiles come from the environment", path)
            return ConfigDocument(path, explicit, None)
        raise ProfileError(
            f"{CONFIG_VARIABLE} names {path}, which does not exist: create it, or unset "
            f"{CONFIG_VARIABLE} to use no configuration file",
            path=path,
        ) from None
    except OSError as error:
        raise ProfileError(
            f"{path}: the configuration file cannot be read ({error.strerror}): fix its "
            f"permissions, or set {CONFIG_VARIABLE} to another file",
            path=path,
        ) from None
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ProfileError(
            f"{path}: line {line}: the configuration file is not UTF-8 text", path=path
        ) from None
    try:
        data = _toml_loads(source)
    except ValueError as error:  # tomllib.TOMLDecodeError
        raise _toml_error(path, source, error) from None
    profiles = data.get("profiles")
    logger.debug(
        "Configuration file %s read (profiles=%s)",
        path,
        ",".join(map(str, profiles)) if isinstance(profiles, dict) else "none",
    )
    return ConfigDocument(path, explicit, data)


@dataclass(frozen=True)
class _FileState:
    path: Path
    explicit: bool
    checked_at: float
    signature: _Signature
    result: ConfigDocument | ProfileError


class ProfileFile:
    """The configuration file, read again only when it changed.

    The change check (one ``stat``) runs at most once per ``interval`` seconds of ``clock``;
    between checks a read costs a clock call and a comparison. The state is one object,
    replaced as a whole, so readers need no lock.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        interval: float = CHECK_INTERVAL_SEC,
    ) -> None:
        self._clock = clock
        self._interval = interval
        self._lock = threading.Lock()
        self._state: _FileState | None = None

    def read(self, path: Path, *, explicit: bool) -> ConfigDocument:
        """The current document; raises ProfileError for a missing named file or a bad one."""
        now = self._clock()
        state = self._state
        if not self._fresh(state, path, explicit, now):
            with self._lock:
                state = self._state
                if not self._fresh(state, path, explicit, now):
                    state = self._check(state, path, explicit, now)
                    self._state = state
        assert state is not None
        result = state.result
        if isinstance(result, ProfileError):
            raise result.with_traceback(None)
        return result

    def unchanged(self, document: ConfigDocument) -> bool:
        """Whether ``document`` is still what the file holds (cheap within the interval)."""
        state = self._state  # the per-request path: one clock call and two comparisons
        if (
            state is not None
            and state.result is document
            and self._clock() - state.checked_at < self._interval
        ):
            return True
        try:
            return self.read(document.path, explicit=document.explicit) is document
        except ProfileError:
            return False

    def reset(self) -> None:
        """Forget the file (tests; a child process may call it after fork)."""
        self._lock = threading.Lock()
        self._state = None

    def after_fork(self) -> None:
        """In a child: a lock another thread held at fork would never be released there; the
        document read before the fork stays valid."""
        self._lock = threading.Lock()

    def _fresh(self, state: _FileState | None, path: Path, explicit: bool, now: float) -> bool:
        return (
            state is not None
            and (state.path is path or state.path == path)
            and state.explicit == explicit
            and now - state.checked_at < self._interval
        )

    def _check(
        self, state: _FileState | None, path: Path, explicit: bool, now: float
    ) -> _FileState:
        signature = _signature(path)
        if state is not None and (state.path, state.explicit, state.signature) == (
            path,
            explicit,
            signature,
        ):
            return dataclasses.replace(state, checked_at=now)
        result: ConfigDocument | ProfileError
        try:
            result = read_document(path, explicit=explicit)
        except ProfileError as error:
            result = error
        return _FileState(path, explicit, now, signature, result)


#: The process's configuration file.
profile_file = ProfileFile()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=profile_file.after_fork)


# --- the profile set -------------------------------------------------------------------------


def is_exact(rule: HostRule) -> bool:
    """A rule naming one host (no wildcard): it wins over patterns."""
    return not any(c in rule.pattern for c in "*?[")


class ProfileSet:
    """The profiles in force: file profiles in file order, then ``env`` (if enabled)."""

    def __init__(
        self,
        profiles: tuple[Profile, ...],
        *,
        path: Path,
        document: ConfigDocument | None = None,
        restricted_to: str | None = None,
        watched: tuple[str, ...] = FILE_VARIABLES,
        env_skipped: tuple[ConfigurationError, ...] = (),
    ) -> None:
        self.profiles = profiles
        self.path = path
        #: The file read these profiles came from (``ProfileFile.unchanged`` checks it).
        self.document = document
        #: The name in MLFLOW_SECRETS_PROFILE, when it restricts the set.
        self.restricted_to = restricted_to
        #: Environment variables whose change calls for a new :func:`load_profiles`.
        self.watched = watched
        #: Why the environment forms no ``env`` profile although a store is enabled there.
        self.env_skipped = env_skipped
        self._file_profiles = tuple(p for p in profiles if p.rules is not None)
        self._env = next((p for p in profiles if p.rules is None), None)
        self._selected: dict[tuple[str, int], Profile | None] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.profiles)

    @property
    def env(self) -> Profile | None:
        return self._env

    def get(self, name: str) -> Profile | None:
        return next((p for p in self.profiles if p.name == name), None)

    def summary(self) -> str:
        """For errors: which profiles exist and where they were defined."""
        parts = []
        if self._file_profiles:
            names = ", ".join(p.name for p in self._file_profiles)
            parts.append(f"{names} from {self.path}")
        else:
            parts.append(f"none from {self.path}")
        if self._env is not None:
            parts.append(f"{ENV_PROFILE} from the environment")
        restricted = f" ({PROFILE_VARIABLE}={self.restricted_to})" if self.restricted_to else ""
        return "profiles " + "; ".join(parts) + restricted

    def select(self, host: str, port: int) -> Profile | None:
        """The profile for an origin: an exact host rule before a pattern, then file order;
        ``env`` for hosts no file profile names (whether env allows the host is the caller's
        decision); None when nothing serves it. Cached per (host, port)."""
        key = (host, port)
        try:
            return self._selected[key]
        except KeyError:
            pass
        found = self._select(host.lower(), port)
        if len(self._selected) >= _SELECT_CACHE_SIZE:
            self._selected.clear()
        self._selected[key] = found
        return found

    def _select(self, host: str, port: int) -> Profile | None:
        pattern_match: Profile | None = None
        for profile in self._file_profiles:
            assert profile.rules is not None
            for rule in profile.rules:
                if not rule.matches(host, port):
                    continue
                if is_exact(rule):
                    return profile
                if pattern_match is None:
                    pattern_match = profile
        return pattern_match or self._env

    def __repr__(self) -> str:
        return f"ProfileSet({self.summary()})"


# --- building profiles -----------------------------------------------------------------------


def _variables(store_name: str) -> tuple[Variable, ...]:
    """What the store reads, as it declares it."""
    return load_store(store_name).variables


def _key_table(store_name: str) -> dict[str, Variable]:
    """Profile key → variable, for the store's keys that may appear in a file."""
    return {v.key: v for v in _variables(store_name) if v.key and not v.secret}


def is_secret_key(key: str, variables: tuple[Variable, ...]) -> bool:
    """A key the store marks secret, or one whose name says it holds a credential (unless the
    store declares it as an ordinary key, e.g. vault's ``renew_token`` flag)."""
    declared = [v for v in variables if v.key == key]
    if declared:
        return any(v.secret for v in declared)
    if key.endswith(_SAFE_SUFFIXES):
        return False
    return key in _SECRET_KEYS or key.endswith(_SECRET_SUFFIXES)


def _secret_alternative(key: str, variables: tuple[Variable, ...]) -> str:
    """The environment variable or ``*_path`` key to use instead of a secret in the file."""
    keys = {v.key for v in variables if v.key}
    options = []
    env_names = [
        v.name
        for v in variables
        if v.secret and (v.key == key or v.name.lower().endswith(key.lower()))
    ]
    if env_names:
        options.append(f"the environment variable {env_names[0]}")
    for suffix in _SAFE_SUFFIXES:
        if f"{key}{suffix}" in keys:
            options.append(f"the key {key}{suffix} naming a file that holds it")
    if not options:
        options.append(
            "the store's login variables in the environment (or its SDK's own credential "
            "chain), or a *_path key naming a file that holds it"
        )
    return " or ".join(options)


class _Builder:
    """Turns one parsed document into profiles; every error names file, profile and key."""

    def __init__(self, document: ConfigDocument, env: Mapping[str, str], general: GeneralSettings):
        self.path = document.path
        self.env = env
        self.general = general

    def error(
        self, profile: str | None, key: str | None, detail: str, *, from_defaults: bool = False
    ) -> ProfileError:
        where = f"profile {profile!r}" if profile is not None else "[defaults]"
        if key is not None:
            where += f", key {key!r}"
            if from_defaults and profile is not None:
                where += " (set in [defaults])"
        return ProfileError(
            f"{self.path}: {where}: {detail}", path=self.path, profile=profile, key=key
        )

    # -- structure ------------------------------------------------------------------------------

    def tables(self, data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        for key in data:
            if key not in ("defaults", "profiles"):
                raise ProfileError(
                    f"{self.path}: unknown top-level key {key!r}: the file holds a [defaults] "
                    "table and [profiles.NAME] tables",
                    path=self.path,
                    key=key,
                )
        defaults = data.get("defaults", {})
        if not isinstance(defaults, dict):
            raise ProfileError(
                f"{self.path}: 'defaults' must be a table ([defaults])",
                path=self.path,
                key="defaults",
            )
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict):
            raise ProfileError(
                f"{self.path}: 'profiles' must be tables named [profiles.NAME]",
                path=self.path,
                key="profiles",
            )
        for name, table in profiles.items():
            if not isinstance(table, dict):
                raise self.error(name, None, "must be a table: [profiles.NAME] followed by keys")
            if name == ENV_PROFILE:
                raise self.error(
                    name,
                    None,
                    f"the name {ENV_PROFILE!r} is reserved for the profile the "
                    "environment variables form: choose another name",
                )
            if not _NAME.match(name):
                raise self.error(
                    name, None, "a profile name uses letters, digits, '_', '-' and '.'"
                )
        return defaults, profiles

    def backend_of(self, profile: str | None, raw: object, *, from_defaults: bool) -> str:
        """The store a profile uses (``raw``: its ``backend`` value, perhaps from [defaults])."""
        known = store_names()
        where = None if from_defaults else profile
        if raw is None:
            raise self.error(
                profile, "backend", f"required: the secret store to use, one of {', '.join(known)}"
            )
        if not isinstance(raw, str):
            raise self.error(where, "backend", "must be a string naming a store")
        backend = raw.strip().lower().replace("_", "-")
        if backend not in known:
            raise self.error(
                where,
                "backend",
                f"unknown secret store {raw.strip()!r}: installed stores are {', '.join(known)}",
            )
        try:
            _variables(backend)
        except StoreUnavailableError as error:
            raise self.error(where, "backend", str(error)) from None
        return backend

    def refuse_secrets(
        self, profile: str | None, table: Mapping[str, Any], variables: tuple[Variable, ...]
    ) -> None:
        """Refuse keys that would hold a credential (the value is never shown)."""
        for key in table:
            if is_secret_key(key, variables):
                raise self.error(
                    profile,
                    key,
                    "the configuration file holds no secret: remove this key and use "
                    f"{_secret_alternative(key, variables)}",
                )

    def rules(self, name: str, table: Mapping[str, Any]) -> tuple[HostRule, ...]:
        hosts = table.get("hosts")
        example = 'e.g. hosts = ["mlflow.example.com", "*.corp.example", "localhost:5000"]'
        if hosts is None:
            raise self.error(name, "hosts", f"required: where this credential may go, {example}")
        if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
            raise self.error(name, "hosts", f"must be a list of strings, {example}")
        if not hosts:
            raise self.error(name, "hosts", f"is empty: name at least one host, {example}")
        rules: list[HostRule] = []
        for item in hosts:
            shown = item.strip()
            if "://" in item:
                raise self.error(
                    name,
                    "hosts",
                    f"{shown!r} is a URL: give a host name, a pattern or host:port, {example}",
                )
            try:
                rule = parse_rule(item)
            except ConfigurationError:
                raise self.error(
                    name, "hosts", f"{shown!r} is not a host name, pattern or host:port, {example}"
                ) from None
            if rule not in rules:
                rules.append(rule)
        return tuple(rules)

    # -- values ---------------------------------------------------------------------------------

    def as_text(self, profile: str | None, key: str, value: object, from_defaults: bool) -> str:
        """TOML string, boolean or number → the string form the loaders parse."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return value
        if isinstance(value, int | float):
            return repr(value)
        raise self.error(
            profile,
            key,
            f"must be a string, a number or a boolean, not a TOML {type(value).__name__}",
            from_defaults=from_defaults,
        )

    def general_values(
        self, profile: str | None, values: Mapping[str, tuple[object, bool]]
    ) -> GeneralSettings:
        """Validate timeout_sec, max_stale_sec, header_name, allow_http as the general loader
        does; keys not set keep the environment's value (header and http: the defaults)."""
        mapping = {
            _GENERAL_KEYS[key]: self.as_text(profile, key, value, from_defaults)
            for key, (value, from_defaults) in values.items()
            if key in _GENERAL_KEYS
        }
        try:
            parsed = load_general(mapping)
        except ConfigurationError as error:
            to_key = {v: k for k, v in _GENERAL_KEYS.items()}
            key = to_key.get(error.variable or "")
            from_defaults = key is not None and values[key][1]
            detail = _translate(str(error), to_key)
            raise self.error(profile, key, detail, from_defaults=from_defaults) from None
        return dataclasses.replace(
            parsed,
            enabled=self.general.enabled,
            allowed_hosts=self.general.allowed_hosts,
            timeout_sec=(
                parsed.timeout_sec if "timeout_sec" in values else self.general.timeout_sec
            ),
            max_stale_sec=(
                parsed.max_stale_sec if "max_stale_sec" in values else self.general.max_stale_sec
            ),
        )

    # -- profiles -------------------------------------------------------------------------------

    def check_defaults(self, defaults: Mapping[str, Any], backends: set[str]) -> None:
        if "hosts" in defaults:
            raise self.error(
                None,
                "hosts",
                "hosts are set per profile only: each profile says where its own credential may go",
            )
        store_keys = set().union(*(_key_table(b) for b in backends)) if backends else set()
        for key in defaults:
            if key not in _COMMON_KEYS and key not in store_keys:
                raise self.error(
                    None,
                    key,
                    "unknown key: no profile's store reads it; [defaults] takes "
                    f"{', '.join(sorted(_COMMON_KEYS - {'hosts'}))} and the keys of the "
                    "profiles' stores",
                )
        for key, value in defaults.items():
            if key != "backend":
                self.as_text(None, key, value, False)

    def build(
        self, name: str, table: Mapping[str, Any], defaults: Mapping[str, Any], backend: str
    ) -> Profile:
        keys = _key_table(backend)
        allowed = (_COMMON_KEYS | set(keys)) - {"max_stale_sec"}
        for key in table:
            if key == "max_stale_sec":
                raise self.error(
                    name,
                    key,
                    "set it in [defaults]: profiles naming the same secret share one cache entry",
                )
            if key not in allowed:
                raise self.error(
                    name,
                    key,
                    f"unknown key for a {backend} profile: use {', '.join(sorted(allowed))}",
                )
        rules = self.rules(name, table)
        # key -> (value, whether it came from [defaults]); the profile's own keys win.
        values: dict[str, tuple[object, bool]] = {
            key: (value, True)
            for key, value in defaults.items()
            if (key in allowed or key == "max_stale_sec") and key not in ("backend", "hosts")
        }
        values.update(
            (key, (value, False)) for key, value in table.items() if key not in ("backend", "hosts")
        )
        general = self.general_values(name, values)
        prefix = store_prefix(backend)
        names = {key: variable.name for key, variable in keys.items()}
        names.update((key, prefix + suffix) for key, suffix in _STORE_COMMON_KEYS.items())
        mapping = {n: self.env[n] for n in self.env_sourced(backend) if n in self.env}
        for key, (value, from_defaults) in values.items():
            if key in names:
                mapping[names[key]] = self.as_text(name, key, value, from_defaults)
                # A key the profile sets is its choice: the environment's other form of the
                # same setting (VAULT_SECRET_ID for secret_id_path) belongs to `env` only.
                replaced = keys[key].replaces if key in keys else None
                if replaced is not None:
                    mapping.pop(replaced, None)
        return Profile(
            name=name,
            rules=rules,
            settings=self.store_settings(name, backend, mapping, general, names, values),
            header_name=general.header_name,
            allow_http=general.allow_http,
            origin_text=f"file {self.path}",
            max_stale_sec=general.max_stale_sec,
        )

    def store_settings(
        self,
        name: str,
        backend: str,
        mapping: Mapping[str, str],
        general: GeneralSettings,
        names: Mapping[str, str],
        values: Mapping[str, tuple[object, bool]],
    ) -> BackendSettings:
        """The store's own loader, its errors told in profile keys instead of variables."""
        to_key = {variable: key for key, variable in names.items()}
        try:
            return load_store_settings(backend, mapping, general)
        except IncompleteConfigurationError as error:
            missing = [_translate(m, to_key) for m in error.missing]
            first = _VARIABLE_NAME.search(error.missing[0])
            raise self.error(
                name,
                to_key.get(first.group(0)) if first else None,
                f"the {backend} configuration is incomplete: {' and '.join(missing)} not set "
                "(keys go in the profile or [defaults]; login variables come from the "
                "environment)",
            ) from None
        except StoreUnavailableError as error:
            raise self.error(name, "backend", str(error)) from None
        except ConfigurationError as error:
            bad = to_key.get(error.variable or "")
            raise self.error(
                name,
                bad,
                _translate(str(error), to_key),
                from_defaults=bad is not None and values.get(bad, (None, False))[1],
            ) from None

    def env_sourced(self, backend: str) -> tuple[str, ...]:
        return tuple(v.name for v in _variables(backend) if v.secret or v.sdk)


def _translate(message: str, to_key: Mapping[str, str]) -> str:
    """A loader's message with variable names replaced by the profile keys they came from."""
    return _VARIABLE_NAME.sub(lambda m: to_key.get(m.group(0), m.group(0)), message)


def _env_profile(
    env: Mapping[str, str], general: GeneralSettings, *, alone: bool
) -> tuple[Profile | None, tuple[ConfigurationError, ...]]:
    """The profile the environment forms: the first enabled store whose configuration is
    complete (SPEC §2). Alone (no file profiles) an enabled but incomplete setup is an error,
    as it always was; beside file profiles it only means there is no ``env`` profile."""
    skipped: list[ConfigurationError] = []
    for name in general.enabled:
        try:
            settings = load_store_settings(name, env, general)
        except (IncompleteConfigurationError, StoreUnavailableError) as passed_over:
            skipped.append(passed_over)
            continue
        profile = Profile(
            name=ENV_PROFILE,
            rules=None,
            settings=settings,
            header_name=general.header_name,
            allow_http=general.allow_http,
            origin_text="environment",
            max_stale_sec=general.max_stale_sec,
        )
        return profile, tuple(skipped)
    if skipped and alone:
        detail = "; ".join(str(s) for s in skipped)
        raise ConfigurationError(
            f"no enabled backend is fully configured ({detail})", variable=skipped[0].variable
        )
    return None, tuple(skipped)


def build_profiles(
    document: ConfigDocument, env: Mapping[str, str], general: GeneralSettings
) -> ProfileSet:
    """The profiles of one document and environment (pure: reads neither file nor os.environ).

    The whole file is validated; with ``MLFLOW_SECRETS_PROFILE`` set, only the named profile's
    store settings are built, so another profile's missing login cannot stop it.
    """
    builder = _Builder(document, env, general)
    defaults, tables = builder.tables(document.data or {})
    default_backend = defaults.get("backend")
    backends: dict[str, str] = {}
    for name, table in tables.items():
        from_defaults = "backend" not in table
        raw = default_backend if from_defaults else table["backend"]
        backends[name] = builder.backend_of(name, raw, from_defaults=from_defaults)
        builder.refuse_secrets(name, table, _variables(backends[name]))
    used = set(backends.values())
    if default_backend is not None:
        used.add(builder.backend_of(None, default_backend, from_defaults=True))
    builder.refuse_secrets(None, defaults, tuple(v for b in sorted(used) for v in _variables(b)))
    builder.check_defaults(defaults, used)

    wanted = text(env, PROFILE_VARIABLE)
    known = [*tables, *([ENV_PROFILE] if general.enabled else [])]
    if wanted is not None and wanted not in known:
        file_state = "" if document.data is not None else ", which does not exist"
        raise ProfileError(
            f"{PROFILE_VARIABLE}={wanted!r} names no profile: the known profiles are "
            f"{', '.join(known) or 'none'} (from {document.path}{file_state}, and "
            f"{ENV_PROFILE!r} when MLFLOW_SECRETS_AUTH_ENABLE is set). Use one of them, or "
            f"unset {PROFILE_VARIABLE}",
            path=document.path,
            profile=wanted,
            variable=PROFILE_VARIABLE,
        )
    profiles: list[Profile] = []
    for name, table in tables.items():
        if wanted is None or wanted == name:
            profiles.append(builder.build(name, table, defaults, backends[name]))
        else:
            builder.rules(name, table)  # still validated: a bad file is reported whole
    env_skipped: tuple[ConfigurationError, ...] = ()
    if wanted is None or wanted == ENV_PROFILE:
        env_profile, env_skipped = _env_profile(env, general, alone=not profiles)
        if env_profile is not None:
            profiles.append(env_profile)
    watched = tuple(
        dict.fromkeys([*FILE_VARIABLES, *(n for b in sorted(used) for n in builder.env_sourced(b))])
    )
    return ProfileSet(
        tuple(profiles),
        path=document.path,
        document=document,
        restricted_to=wanted,
        watched=watched,
        env_skipped=env_skipped,
    )


def load_profiles(
    env: Mapping[str, str], general: GeneralSettings, *, source: ProfileFile | None = None
) -> ProfileSet:
    """The profiles for this environment: the file (read through ``source``, by default the
    process's :data:`profile_file`) plus the ``env`` profile."""
    reader = profile_file if source is None else source
    document = reader.read(config_path(env), explicit=config_is_explicit(env))
    return build_profiles(document, env, general)


# --- the configuration in force ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Configuration:
    """One reading of the environment and the file: what the runtime builds auth objects from."""

    general: GeneralSettings
    profiles: ProfileSet


_NOT_LOADED = ConfigurationError("not loaded")


class ConfigurationCache:
    """The configuration, rebuilt only when a watched variable or the file changed.

    Per request this costs one snapshot comparison of the watched variables and, with a file,
    :meth:`ProfileFile.unchanged` (a clock call within the one-second check interval). The
    state is one tuple, replaced as a whole, so a reader never mixes two loads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: tuple[
            tuple[object, ...],
            tuple[object, ...],
            ConfigDocument | None,
            Configuration | ConfigurationError,
        ] = ((), (object(),), None, _NOT_LOADED)

    def current(self) -> Configuration:
        keys, values, document, result = self._state
        if tuple(map(environment_get, keys)) != values or (
            document is not None and not profile_file.unchanged(document)
        ):
            with self._lock:
                _, _, _, result = self._state = self._reload()
        if isinstance(result, ConfigurationError):
            raise result.with_traceback(None)  # a fresh traceback each time; no growth
        return result

    def _reload(
        self,
    ) -> tuple[
        tuple[object, ...],
        tuple[object, ...],
        ConfigDocument | None,
        Configuration | ConfigurationError,
    ]:
        env = os.environ
        try:
            enabled: tuple[str, ...] | None = parse_enabled(env)
        except ConfigurationError:
            enabled = None
        names = list(
            dict.fromkeys((*watched_variables(enabled), *FILE_VARIABLES, *PROXY_VARIABLES))
        )
        keys = encode_names(tuple(names))
        values = snapshot(keys)  # taken first: a change after it reloads again
        document: ConfigDocument | None = None
        result: Configuration | ConfigurationError
        try:
            general = load_general(env)
            profiles = load_profiles(env, general)
        except ProfileError as error:
            # A bad file: a document that never matches, so the next request looks again
            # (ProfileFile answers from its one-second memory until the file changes).
            document = ConfigDocument(error.path or config_path(env), False, None)
            result = error
        except ConfigurationError as error:
            result = error
        else:
            document = profiles.document
            extra = tuple(n for n in profiles.watched if n not in names)
            if extra:
                keys = keys + encode_names(extra)
                values = values + snapshot(encode_names(extra))
            result = Configuration(general, profiles)
        return keys, values, document, result

    def reset(self) -> None:
        """Forget the loaded configuration (tests)."""
        self._state = ((), (object(),), None, _NOT_LOADED)

    def after_fork_in_child(self) -> None:
        """A new lock: one held by a parent thread would block the child forever. The loaded
        configuration stays; the child reloads when something differs."""
        self._lock = threading.Lock()


#: The configuration for this process's environment and file.
configuration_cache = ConfigurationCache()
