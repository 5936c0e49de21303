"""Environment → typed, validated, frozen settings.

This is the only module that reads the environment. Settings are rebuilt only when one of the
variables it knows about changes, so the per-request cost is one snapshot comparison.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from .backends import BUILTIN_ORDER, StoreUnavailableError, load_store, store_names
from .backends.base import AuthMode, CommonSettings, StoreSettings
from .errors import ConfigurationError, IncompleteConfigurationError
from .hosts import HostRule, parse_allowed_hosts

VaultLoginMethod = Literal["token", "approle", "kubernetes", "jwt"]
BackendName = str

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
ENABLE_VARIABLE = "MLFLOW_SECRETS_AUTH_ENABLE"

DEFAULT_TTL_SEC = 300.0
DEFAULT_TIMEOUT_SEC = 10.0
DEFAULT_MAX_STALE_SEC = 3600.0
DEFAULT_K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: Where the Vault CLI keeps the token of `vault login` (its default token helper).
VAULT_TOKEN_FILE = ".vault-token"
VAULT_LOGIN_METHODS: tuple[VaultLoginMethod, ...] = ("token", "approle", "kubernetes", "jwt")

GENERAL_VARIABLES: tuple[str, ...] = (
    ENABLE_VARIABLE,
    "MLFLOW_SECRETS_ALLOWED_HOSTS",
    "MLFLOW_SECRETS_ALLOW_HTTP",
    "MLFLOW_AUTH_HEADER_NAME",
    "MLFLOW_SECRETS_TIMEOUT_SEC",
    "MLFLOW_SECRETS_MAX_STALE_SEC",
    "MLFLOW_SECRETS_LOG_LEVEL",
)
#: Variables of the stores whose settings still live here.
_LEGACY_VARIABLES: dict[BackendName, tuple[str, ...]] = {
    "vault": (
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "VAULT_ROLE_ID",
        "VAULT_SECRET_ID",
        "VAULT_NAMESPACE",
        "VAULT_CACERT",
        "VAULT_SKIP_VERIFY",
        "MLFLOW_VAULT_SECRET_PATH",
        "MLFLOW_VAULT_APPROLE_MOUNT",
        "MLFLOW_VAULT_K8S_ROLE",
        "MLFLOW_VAULT_K8S_TOKEN_PATH",
        "MLFLOW_VAULT_K8S_MOUNT",
        "MLFLOW_VAULT_SECRET_ID_PATH",
        "MLFLOW_VAULT_JWT_ROLE",
        "MLFLOW_VAULT_JWT_TOKEN_PATH",
        "MLFLOW_VAULT_JWT_TOKEN",
        "MLFLOW_VAULT_JWT_MOUNT",
        "MLFLOW_VAULT_JWT_AUDIENCE",
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "MLFLOW_VAULT_AUTH_METHOD",
        "MLFLOW_VAULT_RENEW_TOKEN",
        "HOME",  # where the Vault CLI's ~/.vault-token is
        "MLFLOW_VAULT_AUTH_MODE",
        "MLFLOW_VAULT_TTL_SEC",
    ),
}
#: Read elsewhere (the cache-clear marker's directory), listed so `info` shows it.
OTHER_VARIABLES: tuple[str, ...] = ("MLFLOW_SECRETS_CACHE_DIR",)


def enable_flag(name: str) -> str:
    """``MLFLOW_SECRETS_AUTH_ENABLE_<NAME>``: the per-store switch (SPEC §2)."""
    return f"{ENABLE_VARIABLE}_{name.upper().replace('-', '_')}"


def store_prefix(name: BackendName) -> str:
    if name in _LEGACY_VARIABLES:
        return "MLFLOW_VAULT"
    return load_store(name).prefix


def store_variables(name: BackendName) -> tuple[str, ...]:
    """What store ``name`` reads: its declared variables and ``<prefix>_AUTH_MODE``/``_TTL_SEC``."""
    if name in _LEGACY_VARIABLES:
        return _LEGACY_VARIABLES[name]
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


@dataclass(frozen=True)
class GeneralSettings:
    """Policy shared by every backend."""

    enabled: tuple[BackendName, ...] = ()
    allowed_hosts: tuple[HostRule, ...] | None = None  # None: the tracking/registry URI hosts
    allow_http: bool = False
    header_name: str | None = None
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    max_stale_sec: float = DEFAULT_MAX_STALE_SEC


@dataclass(frozen=True)
class VaultSettings:
    """HashiCorp Vault / OpenBao: where the secret is and how to log in."""

    addr: str
    secret_path: str
    auth_mode: AuthMode = "bearer"
    ttl_sec: float = DEFAULT_TTL_SEC
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    #: The login method in use: chosen by MLFLOW_VAULT_AUTH_METHOD or by the order of SPEC §3.
    login_method: VaultLoginMethod = "token"
    token: str | None = field(default=None, repr=False)
    #: The Vault CLI's token file, read when the token method has no VAULT_TOKEN.
    token_file: str | None = None
    renew_token: bool = False  # MLFLOW_VAULT_RENEW_TOKEN: renew a user-supplied token too
    role_id: str | None = None
    secret_id: str | None = field(default=None, repr=False)
    secret_id_path: str | None = None
    approle_mount: str = "approle"
    k8s_role: str | None = None
    k8s_token_path: str = DEFAULT_K8S_TOKEN_PATH
    k8s_mount: str = "kubernetes"
    jwt_role: str | None = None
    jwt_token: str | None = field(default=None, repr=False)
    jwt_token_path: str | None = None
    jwt_mount: str = "jwt"
    jwt_audience: str | None = None
    #: GitHub Actions' OIDC token endpoint and its request token (used when no JWT is given).
    github_oidc_url: str | None = None
    github_oidc_token: str | None = field(default=None, repr=False)
    namespace: str | None = None
    cacert: str | None = None
    skip_verify: bool = False
    backend_name: BackendName = "vault"

    @property
    def token_origin(self) -> str:
        """Where a user-supplied token comes from, as the user would name it."""
        return "VAULT_TOKEN" if self.token or not self.token_file else self.token_file

    @property
    def login_description(self) -> str:
        """The login in words, for logs, errors and `doctor` (names and paths, never values)."""
        method = self.login_method
        if method == "token":
            return f"token login ({self.token_origin})"
        if method == "approle":
            source = "MLFLOW_VAULT_SECRET_ID_PATH" if self.secret_id_path else "VAULT_SECRET_ID"
            return f"AppRole login at auth/{self.approle_mount} (VAULT_ROLE_ID, {source})"
        if method == "kubernetes":
            return f"Kubernetes login as role {self.k8s_role} at auth/{self.k8s_mount}"
        if self.jwt_token_path:
            source = "MLFLOW_VAULT_JWT_TOKEN_PATH"
        elif self.jwt_token:
            source = "MLFLOW_VAULT_JWT_TOKEN"
        else:
            source = "the GitHub Actions OIDC token"
        return f"JWT login as role {self.jwt_role} at auth/{self.jwt_mount} ({source})"

    @property
    def identity(self) -> str:
        """Cache key: which secret, never how we authenticate."""
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"vault:{self.addr}:{ns}{self.secret_path}"


BackendSettings = VaultSettings | StoreSettings


@dataclass(frozen=True)
class Settings:
    """Everything the plugin needs for one configuration."""

    general: GeneralSettings
    backend: BackendSettings | None
    #: Enabled backends passed over: configuration incomplete, or the store failed to load.
    skipped: tuple[ConfigurationError, ...] = ()


# --- value parsers -------------------------------------------------------------------------


def _get(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def parse_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"{name}={raw!r} is not a boolean: use one of 1, true, yes, on or 0, false, no, off",
        variable=name,
    )


def _seconds(env: Mapping[str, str], name: str, default: float, *, allow_zero: bool) -> float:
    raw = _get(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok):
        floor = "zero or a positive" if allow_zero else "a positive"
        raise ConfigurationError(
            f"{name}={raw!r} is not a valid number of seconds: use {floor} number, e.g. "
            f"{default:g}",
            variable=name,
        )
    return value


def _auth_mode(env: Mapping[str, str], backend: BackendName) -> AuthMode:
    name = f"{store_prefix(backend)}_AUTH_MODE"
    raw = _get(env, name)
    if raw is None:
        return "auto"
    value = raw.lower()
    if value == "auto":
        return "auto"
    if value == "bearer":
        return "bearer"
    if value == "basic":
        return "basic"
    raise ConfigurationError(
        f"{name}={raw!r} is not an auth mode: use 'auto' (the default: basic for a "
        "username/password secret, bearer otherwise), 'bearer' or 'basic'",
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
        if parse_bool(env, enable_flag(name), False):
            wanted.add(name)
    return tuple(name for name in names if name in wanted)


def _http_url(env: Mapping[str, str], name: str, *, https_only: bool) -> str:
    raw = _get(env, name) or ""
    parts = urlsplit(raw)
    schemes = ("https",) if https_only else ("http", "https")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
        ok = parts.scheme in schemes and bool(parts.hostname) and not parts.username
    except ValueError:
        ok = False
    if not ok:
        example = "https://myvault.vault.azure.net" if https_only else "https://vault.example:8200"
        raise ConfigurationError(
            f"{name} is not a valid {' or '.join(schemes)} URL: use the form {example}",
            variable=name,
        )
    return raw.rstrip("/")


# --- per backend ---------------------------------------------------------------------------


_VAULT_LOGIN_CHOICES = (
    "VAULT_TOKEN (or AppRole VAULT_ROLE_ID with VAULT_SECRET_ID or MLFLOW_VAULT_SECRET_ID_PATH, "
    "Kubernetes MLFLOW_VAULT_K8S_ROLE, JWT MLFLOW_VAULT_JWT_ROLE, or the Vault CLI's "
    "~/.vault-token from `vault login`)"
)


def _vault_token_file(env: Mapping[str, str]) -> str | None:
    """The Vault CLI's ``~/.vault-token``, when it exists (read again at each use)."""
    home = _get(env, "HOME") or os.path.expanduser("~")
    if not home or home == "~":
        return None
    path = os.path.join(home, VAULT_TOKEN_FILE)
    return path if os.path.isfile(path) else None


def _github_oidc(env: Mapping[str, str]) -> tuple[str, str] | None:
    url = _get(env, "ACTIONS_ID_TOKEN_REQUEST_URL")
    token = _get(env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    return (url, token) if url and token else None


def _vault_login_missing(
    env: Mapping[str, str], method: VaultLoginMethod, token_file: str | None
) -> list[str]:
    """What ``method`` still lacks to log in (empty: it can be used)."""
    missing: list[str] = []
    if method == "token":
        if not (_get(env, "VAULT_TOKEN") or token_file):
            missing.append("VAULT_TOKEN (or the Vault CLI's ~/.vault-token from `vault login`)")
    elif method == "approle":
        if not _get(env, "VAULT_ROLE_ID"):
            missing.append("VAULT_ROLE_ID")
        if not (_get(env, "VAULT_SECRET_ID") or _get(env, "MLFLOW_VAULT_SECRET_ID_PATH")):
            missing.append("VAULT_SECRET_ID (or MLFLOW_VAULT_SECRET_ID_PATH)")
    elif method == "kubernetes":
        if not _get(env, "MLFLOW_VAULT_K8S_ROLE"):
            missing.append("MLFLOW_VAULT_K8S_ROLE")
    else:
        if not _get(env, "MLFLOW_VAULT_JWT_ROLE"):
            missing.append("MLFLOW_VAULT_JWT_ROLE")
        given = _get(env, "MLFLOW_VAULT_JWT_TOKEN_PATH") or _get(env, "MLFLOW_VAULT_JWT_TOKEN")
        if not (given or _github_oidc(env)):
            missing.append(
                "MLFLOW_VAULT_JWT_TOKEN_PATH (or MLFLOW_VAULT_JWT_TOKEN; on GitHub Actions, "
                "the workflow permission id-token: write)"
            )
    return missing


def _vault_login_method(
    env: Mapping[str, str], token_file: str | None
) -> tuple[VaultLoginMethod | None, list[str]]:
    """The login method (forced, else the first configured in SPEC §3's order) or what is
    missing. A half-configured AppRole or JWT login is reported rather than passed over for the
    token file: the user meant to use it."""
    forced = _get(env, "MLFLOW_VAULT_AUTH_METHOD")
    if forced is not None:
        by_name: dict[str, VaultLoginMethod] = {m: m for m in VAULT_LOGIN_METHODS}
        chosen = by_name.get(forced.lower())
        if chosen is None:
            raise ConfigurationError(
                f"MLFLOW_VAULT_AUTH_METHOD={forced!r} is not a Vault login method: use one of "
                f"{', '.join(VAULT_LOGIN_METHODS)}",
                variable="MLFLOW_VAULT_AUTH_METHOD",
            )
        missing = _vault_login_missing(env, chosen, token_file)
        return (None, missing) if missing else (chosen, [])
    if _get(env, "VAULT_TOKEN"):
        return "token", []
    for candidate in VAULT_LOGIN_METHODS[1:]:
        if not _vault_login_missing(env, candidate, token_file):
            return candidate, []
    attempted: dict[VaultLoginMethod, tuple[str, ...]] = {
        "approle": ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "MLFLOW_VAULT_SECRET_ID_PATH"),
        "jwt": ("MLFLOW_VAULT_JWT_ROLE", "MLFLOW_VAULT_JWT_TOKEN", "MLFLOW_VAULT_JWT_TOKEN_PATH"),
    }
    for candidate, names in attempted.items():
        if any(_get(env, name) for name in names):
            return None, _vault_login_missing(env, candidate, token_file)
    if token_file:
        return "token", []
    return None, [_VAULT_LOGIN_CHOICES]


def _one_of(env: Mapping[str, str], first: str, second: str) -> None:
    if _get(env, first) and _get(env, second):
        raise ConfigurationError(
            f"both {first} and {second} are set: set only one of them", variable=second
        )


def load_vault(env: Mapping[str, str], general: GeneralSettings) -> VaultSettings:
    missing = [n for n in ("VAULT_ADDR", "MLFLOW_VAULT_SECRET_PATH") if not _get(env, n)]
    token_file = _vault_token_file(env)
    method, login_missing = _vault_login_method(env, token_file)
    missing += login_missing
    if missing or method is None:
        raise IncompleteConfigurationError("vault", missing)
    secret_path = (_get(env, "MLFLOW_VAULT_SECRET_PATH") or "").strip("/")
    if "/" not in secret_path:
        raise ConfigurationError(
            "MLFLOW_VAULT_SECRET_PATH must be <mount>/<path>, e.g. secret/mlflow/auth",
            variable="MLFLOW_VAULT_SECRET_PATH",
        )
    token = _get(env, "VAULT_TOKEN") if method == "token" else None
    jwt_token = jwt_token_path = None
    github = None
    if method == "approle":
        _one_of(env, "VAULT_SECRET_ID", "MLFLOW_VAULT_SECRET_ID_PATH")
    if method == "jwt":
        _one_of(env, "MLFLOW_VAULT_JWT_TOKEN", "MLFLOW_VAULT_JWT_TOKEN_PATH")
        jwt_token = _get(env, "MLFLOW_VAULT_JWT_TOKEN")
        jwt_token_path = _get(env, "MLFLOW_VAULT_JWT_TOKEN_PATH")
        github = None if jwt_token or jwt_token_path else _github_oidc(env)
    return VaultSettings(
        addr=_http_url(env, "VAULT_ADDR", https_only=False),
        secret_path=secret_path,
        auth_mode=_auth_mode(env, "vault"),
        ttl_sec=_seconds(env, "MLFLOW_VAULT_TTL_SEC", DEFAULT_TTL_SEC, allow_zero=False),
        timeout_sec=general.timeout_sec,
        login_method=method,
        token=token,
        token_file=token_file if method == "token" and not token else None,
        renew_token=parse_bool(env, "MLFLOW_VAULT_RENEW_TOKEN", False),
        role_id=_get(env, "VAULT_ROLE_ID"),
        secret_id=_get(env, "VAULT_SECRET_ID") if method == "approle" else None,
        secret_id_path=_get(env, "MLFLOW_VAULT_SECRET_ID_PATH"),
        approle_mount=(_get(env, "MLFLOW_VAULT_APPROLE_MOUNT") or "approle").strip("/"),
        k8s_role=_get(env, "MLFLOW_VAULT_K8S_ROLE"),
        k8s_token_path=_get(env, "MLFLOW_VAULT_K8S_TOKEN_PATH") or DEFAULT_K8S_TOKEN_PATH,
        k8s_mount=(_get(env, "MLFLOW_VAULT_K8S_MOUNT") or "kubernetes").strip("/"),
        jwt_role=_get(env, "MLFLOW_VAULT_JWT_ROLE"),
        jwt_token=jwt_token,
        jwt_token_path=jwt_token_path,
        jwt_mount=(_get(env, "MLFLOW_VAULT_JWT_MOUNT") or "jwt").strip("/"),
        jwt_audience=_get(env, "MLFLOW_VAULT_JWT_AUDIENCE"),
        github_oidc_url=github[0] if github else None,
        github_oidc_token=github[1] if github else None,
        namespace=(_get(env, "VAULT_NAMESPACE") or "").strip("/") or None,
        cacert=_get(env, "VAULT_CACERT"),
        skip_verify=parse_bool(env, "VAULT_SKIP_VERIFY", False),
    )


def load_store_settings(
    name: BackendName, env: Mapping[str, str], general: GeneralSettings
) -> BackendSettings:
    """One store's settings from ``env``, through the loader that store declares."""
    if name == "vault":
        return load_vault(env, general)
    store = load_store(name)
    prefix = store.prefix
    common = CommonSettings(
        backend_name=name,
        auth_mode=_auth_mode(env, name),
        ttl_sec=_seconds(env, f"{prefix}_TTL_SEC", store.default_ttl_sec, allow_zero=False),
        timeout_sec=general.timeout_sec,
    )
    settings: StoreSettings = store.load_settings(env, common)
    return settings


def load_general(env: Mapping[str, str]) -> GeneralSettings:
    header = _get(env, "MLFLOW_AUTH_HEADER_NAME")
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
        allow_http=parse_bool(env, "MLFLOW_SECRETS_ALLOW_HTTP", False),
        header_name=header,
        timeout_sec=_seconds(
            env, "MLFLOW_SECRETS_TIMEOUT_SEC", DEFAULT_TIMEOUT_SEC, allow_zero=False
        ),
        max_stale_sec=_seconds(
            env, "MLFLOW_SECRETS_MAX_STALE_SEC", DEFAULT_MAX_STALE_SEC, allow_zero=True
        ),
    )


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build settings; the first enabled backend whose configuration is complete is chosen."""
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


# --- snapshot cache ------------------------------------------------------------------------


def watched_variables(enabled: tuple[BackendName, ...] | None) -> tuple[str, ...]:
    """What can change the outcome: the general variables and those of enabled backends."""
    return known_variables(enabled)
