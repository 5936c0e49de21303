"""Environment → typed, validated, frozen settings.

This is the only module that reads the environment. Settings are rebuilt only when one of the
variables it knows about changes, so the per-request cost is one snapshot comparison.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

from .environment import encode_names, snapshot
from .environment import raw_value as environment_get
from .errors import ConfigurationError, IncompleteConfigurationError
from .hosts import HostRule, parse_allowed_hosts

#: ``auto`` (the default) follows the secret's shape: username and password → basic, else bearer.
AuthMode = Literal["auto", "bearer", "basic"]
BackendName = Literal["vault", "aws-secrets-manager", "azure-key-vault"]

#: Priority order when several backends are enabled (SPEC §2).
BACKEND_NAMES: tuple[BackendName, ...] = ("vault", "aws-secrets-manager", "azure-key-vault")
_ENABLE_FLAGS: dict[BackendName, str] = {
    "vault": "MLFLOW_SECRETS_AUTH_ENABLE_VAULT",
    "aws-secrets-manager": "MLFLOW_SECRETS_AUTH_ENABLE_AWS_SECRETS_MANAGER",
    "azure-key-vault": "MLFLOW_SECRETS_AUTH_ENABLE_AZURE_KEY_VAULT",
}
_PREFIX: dict[BackendName, str] = {
    "vault": "MLFLOW_VAULT",
    "aws-secrets-manager": "MLFLOW_AWS",
    "azure-key-vault": "MLFLOW_AZURE",
}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_HEADER_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

DEFAULT_TTL_SEC = 300.0
DEFAULT_TIMEOUT_SEC = 10.0
DEFAULT_MAX_STALE_SEC = 3600.0
DEFAULT_K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"

# Variables the SDKs read themselves; a change to one rebuilds that backend's client.
AWS_SDK_VARIABLES = (
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_CA_BUNDLE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)
AZURE_SDK_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "AZURE_TOKEN_CREDENTIALS",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "AZURE_POD_IDENTITY_AUTHORITY_HOST",
    "AZURE_CLIENT_CERTIFICATE_PASSWORD",
    "AZURE_ADDITIONALLY_ALLOWED_TENANTS",
    "REQUESTS_CA_BUNDLE",
)

GENERAL_VARIABLES: tuple[str, ...] = (
    "MLFLOW_SECRETS_AUTH_ENABLE",
    *_ENABLE_FLAGS.values(),
    "MLFLOW_SECRETS_ALLOWED_HOSTS",
    "MLFLOW_SECRETS_ALLOW_HTTP",
    "MLFLOW_AUTH_HEADER_NAME",
    "MLFLOW_SECRETS_TIMEOUT_SEC",
    "MLFLOW_SECRETS_MAX_STALE_SEC",
    "MLFLOW_SECRETS_LOG_LEVEL",
)
BACKEND_VARIABLES: dict[BackendName, tuple[str, ...]] = {
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
        "MLFLOW_VAULT_AUTH_MODE",
        "MLFLOW_VAULT_TTL_SEC",
    ),
    "aws-secrets-manager": (
        "MLFLOW_AWS_SECRET_NAME",
        "MLFLOW_AWS_SECRET_ID",
        "MLFLOW_AWS_VERSION_STAGE",
        "MLFLOW_AWS_AUTH_MODE",
        "MLFLOW_AWS_TTL_SEC",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        *AWS_SDK_VARIABLES,
    ),
    "azure-key-vault": (
        "MLFLOW_AZURE_KEY_VAULT_URL",
        "AZURE_KEY_VAULT_URL",
        "MLFLOW_AZURE_SECRET_NAME",
        "MLFLOW_AZURE_SECRET_VERSION",
        "MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE",
        "MLFLOW_AZURE_AUTH_MODE",
        "MLFLOW_AZURE_TTL_SEC",
        *AZURE_SDK_VARIABLES,
    ),
}
#: Read elsewhere (the cache-clear marker's directory), listed so `info` shows it.
OTHER_VARIABLES: tuple[str, ...] = ("MLFLOW_SECRETS_CACHE_DIR",)
#: Every variable this package reads.
KNOWN_VARIABLES: tuple[str, ...] = (
    GENERAL_VARIABLES
    + tuple(name for names in BACKEND_VARIABLES.values() for name in names)
    + OTHER_VARIABLES
)


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
    token: str | None = field(default=None, repr=False)
    role_id: str | None = None
    secret_id: str | None = field(default=None, repr=False)
    approle_mount: str = "approle"
    k8s_role: str | None = None
    k8s_token_path: str = DEFAULT_K8S_TOKEN_PATH
    k8s_mount: str = "kubernetes"
    namespace: str | None = None
    cacert: str | None = None
    skip_verify: bool = False
    backend_name: BackendName = "vault"

    @property
    def login_method(self) -> Literal["token", "approle", "kubernetes"]:
        if self.token:
            return "token"
        if self.role_id and self.secret_id:
            return "approle"
        return "kubernetes"

    @property
    def identity(self) -> str:
        """Cache key: which secret, never how we authenticate."""
        ns = f"{self.namespace}/" if self.namespace else ""
        return f"vault:{self.addr}:{ns}{self.secret_path}"


@dataclass(frozen=True)
class AwsSettings:
    """AWS Secrets Manager: which secret; credentials come from boto3's own chain."""

    secret_id: str
    region: str | None = None
    version_stage: str = "AWSCURRENT"
    auth_mode: AuthMode = "auto"
    ttl_sec: float = DEFAULT_TTL_SEC
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    sdk_environment: str = field(default="", repr=False)  # digest of AWS_SDK_VARIABLES
    backend_name: BackendName = "aws-secrets-manager"

    @property
    def identity(self) -> str:
        return f"aws-secrets-manager:{self.region or '-'}:{self.secret_id}:{self.version_stage}"


@dataclass(frozen=True)
class AzureSettings:
    """Azure Key Vault: which vault and secret; credentials come from DefaultAzureCredential."""

    vault_url: str
    secret_name: str
    secret_version: str | None = None
    verify_challenge_resource: bool = True
    auth_mode: AuthMode = "auto"
    ttl_sec: float = DEFAULT_TTL_SEC
    timeout_sec: float = DEFAULT_TIMEOUT_SEC
    sdk_environment: str = field(default="", repr=False)  # digest of AZURE_SDK_VARIABLES
    backend_name: BackendName = "azure-key-vault"

    @property
    def identity(self) -> str:
        return f"azure-key-vault:{self.vault_url}:{self.secret_name}:{self.secret_version or ''}"


BackendSettings = VaultSettings | AwsSettings | AzureSettings


@dataclass(frozen=True)
class Settings:
    """Everything the plugin needs for one configuration."""

    general: GeneralSettings
    backend: BackendSettings | None
    #: Enabled backends passed over because their configuration was incomplete.
    skipped: tuple[IncompleteConfigurationError, ...] = ()


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
    name = f"{_PREFIX[backend]}_AUTH_MODE"
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
    """MLFLOW_SECRETS_AUTH_ENABLE plus the per-backend flags, in priority order."""
    wanted: set[str] = set()
    raw = env.get("MLFLOW_SECRETS_AUTH_ENABLE") or ""
    for item in raw.split(","):
        name = item.strip().lower().replace("_", "-")
        if not name:
            continue
        if name not in BACKEND_NAMES:
            raise ConfigurationError(
                f"MLFLOW_SECRETS_AUTH_ENABLE names an unknown backend {item.strip()!r}: "
                f"valid names are {', '.join(BACKEND_NAMES)}",
                variable="MLFLOW_SECRETS_AUTH_ENABLE",
            )
        wanted.add(name)
    for backend, flag in _ENABLE_FLAGS.items():
        if parse_bool(env, flag, False):
            wanted.add(backend)
    return tuple(name for name in BACKEND_NAMES if name in wanted)


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


def _digest(env: Mapping[str, str], names: tuple[str, ...]) -> str:
    material = "\0".join(f"{n}={env.get(n, '')}" for n in names)
    return hashlib.sha256(material.encode()).hexdigest()


# --- per backend ---------------------------------------------------------------------------


def load_vault(env: Mapping[str, str], general: GeneralSettings) -> VaultSettings:
    missing = [n for n in ("VAULT_ADDR", "MLFLOW_VAULT_SECRET_PATH") if not _get(env, n)]
    token = _get(env, "VAULT_TOKEN")
    role_id, secret_id = _get(env, "VAULT_ROLE_ID"), _get(env, "VAULT_SECRET_ID")
    k8s_role = _get(env, "MLFLOW_VAULT_K8S_ROLE")
    if not token and not k8s_role:
        if role_id and not secret_id:
            missing.append("VAULT_SECRET_ID")
        elif secret_id and not role_id:
            missing.append("VAULT_ROLE_ID")
        elif not (role_id and secret_id):
            missing.append(
                "VAULT_TOKEN (or VAULT_ROLE_ID with VAULT_SECRET_ID, or MLFLOW_VAULT_K8S_ROLE)"
            )
    if missing:
        raise IncompleteConfigurationError("vault", missing)
    secret_path = (_get(env, "MLFLOW_VAULT_SECRET_PATH") or "").strip("/")
    if "/" not in secret_path:
        raise ConfigurationError(
            "MLFLOW_VAULT_SECRET_PATH must be <mount>/<path>, e.g. secret/mlflow/auth",
            variable="MLFLOW_VAULT_SECRET_PATH",
        )
    return VaultSettings(
        addr=_http_url(env, "VAULT_ADDR", https_only=False),
        secret_path=secret_path,
        auth_mode=_auth_mode(env, "vault"),
        ttl_sec=_seconds(env, "MLFLOW_VAULT_TTL_SEC", DEFAULT_TTL_SEC, allow_zero=False),
        timeout_sec=general.timeout_sec,
        token=token,
        role_id=role_id,
        secret_id=secret_id,
        approle_mount=(_get(env, "MLFLOW_VAULT_APPROLE_MOUNT") or "approle").strip("/"),
        k8s_role=k8s_role,
        k8s_token_path=_get(env, "MLFLOW_VAULT_K8S_TOKEN_PATH") or DEFAULT_K8S_TOKEN_PATH,
        k8s_mount=(_get(env, "MLFLOW_VAULT_K8S_MOUNT") or "kubernetes").strip("/"),
        namespace=(_get(env, "VAULT_NAMESPACE") or "").strip("/") or None,
        cacert=_get(env, "VAULT_CACERT"),
        skip_verify=parse_bool(env, "VAULT_SKIP_VERIFY", False),
    )


def load_aws(env: Mapping[str, str], general: GeneralSettings) -> AwsSettings:
    secret_id = _get(env, "MLFLOW_AWS_SECRET_NAME") or _get(env, "MLFLOW_AWS_SECRET_ID")
    if not secret_id:
        raise IncompleteConfigurationError(
            "aws-secrets-manager", ["MLFLOW_AWS_SECRET_NAME (or MLFLOW_AWS_SECRET_ID)"]
        )
    region = _get(env, "AWS_REGION") or _get(env, "AWS_DEFAULT_REGION")
    if region is None and secret_id.startswith("arn:"):
        arn_parts = secret_id.split(":")
        region = arn_parts[3] if len(arn_parts) > 3 and arn_parts[3] else None
    return AwsSettings(
        secret_id=secret_id,
        region=region,
        version_stage=_get(env, "MLFLOW_AWS_VERSION_STAGE") or "AWSCURRENT",
        auth_mode=_auth_mode(env, "aws-secrets-manager"),
        ttl_sec=_seconds(env, "MLFLOW_AWS_TTL_SEC", DEFAULT_TTL_SEC, allow_zero=False),
        timeout_sec=general.timeout_sec,
        sdk_environment=_digest(env, AWS_SDK_VARIABLES),
    )


def load_azure(env: Mapping[str, str], general: GeneralSettings) -> AzureSettings:
    url_var = (
        "MLFLOW_AZURE_KEY_VAULT_URL"
        if _get(env, "MLFLOW_AZURE_KEY_VAULT_URL")
        else "AZURE_KEY_VAULT_URL"
    )
    missing = []
    if not _get(env, url_var):
        missing.append("MLFLOW_AZURE_KEY_VAULT_URL (or AZURE_KEY_VAULT_URL)")
    if not _get(env, "MLFLOW_AZURE_SECRET_NAME"):
        missing.append("MLFLOW_AZURE_SECRET_NAME")
    if missing:
        raise IncompleteConfigurationError("azure-key-vault", missing)
    return AzureSettings(
        vault_url=_http_url(env, url_var, https_only=True),
        secret_name=_get(env, "MLFLOW_AZURE_SECRET_NAME") or "",
        secret_version=_get(env, "MLFLOW_AZURE_SECRET_VERSION"),
        verify_challenge_resource=parse_bool(env, "MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE", True),
        auth_mode=_auth_mode(env, "azure-key-vault"),
        ttl_sec=_seconds(env, "MLFLOW_AZURE_TTL_SEC", DEFAULT_TTL_SEC, allow_zero=False),
        timeout_sec=general.timeout_sec,
        sdk_environment=_digest(env, AZURE_SDK_VARIABLES),
    )


_LOADERS: dict[str, Callable[[Mapping[str, str], GeneralSettings], BackendSettings]] = {
    "vault": load_vault,
    "aws-secrets-manager": load_aws,
    "azure-key-vault": load_azure,
}


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
    skipped: list[IncompleteConfigurationError] = []
    for name in general.enabled:
        try:
            backend = _LOADERS[name](env, general)
        except IncompleteConfigurationError as incomplete:
            skipped.append(incomplete)
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
    if enabled is None:
        return KNOWN_VARIABLES
    return GENERAL_VARIABLES + tuple(n for b in enabled for n in BACKEND_VARIABLES[b])


class _SettingsCache:
    """Reloads settings only when a watched variable changed since the last load.

    The state is one tuple (watched keys, their values, the result), replaced as a whole, so a
    reader never pairs one load's values with another load's result.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: tuple[tuple[object, ...], tuple[object, ...], Settings | ConfigurationError]
        # The placeholder values match no snapshot, so the first call loads.
        self._state = ((), (object(),), ConfigurationError("not loaded"))

    def current(self) -> Settings:
        keys, values, result = self._state
        if tuple(map(environment_get, keys)) != values:  # snapshot(), inline
            with self._lock:
                result = self._reload()
        if isinstance(result, ConfigurationError):
            raise result.with_traceback(None)  # a fresh traceback each time; no growth
        return result

    def _reload(self) -> Settings | ConfigurationError:
        try:
            enabled: tuple[BackendName, ...] | None = parse_enabled(os.environ)
        except ConfigurationError:
            enabled = None
        keys = encode_names(watched_variables(enabled))
        values = snapshot(keys)  # taken first: a change after it reloads again
        result: Settings | ConfigurationError
        try:
            result = load_settings(os.environ)
        except ConfigurationError as error:
            result = error
        self._state = (keys, values, result)
        return result


#: Settings for the current environment, rebuilt only when a watched variable changed.
settings_cache = _SettingsCache()
