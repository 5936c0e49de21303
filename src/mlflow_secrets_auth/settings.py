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

AuthMode = Literal["bearer", "basic"]
VaultLoginMethod = Literal["token", "approle", "kubernetes", "jwt"]
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
#: Where the Vault CLI keeps the token of `vault login` (its default token helper).
VAULT_TOKEN_FILE = ".vault-token"
VAULT_LOGIN_METHODS: tuple[VaultLoginMethod, ...] = ("token", "approle", "kubernetes", "jwt")

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


@dataclass(frozen=True)
class AwsSettings:
    """AWS Secrets Manager: which secret; credentials come from boto3's own chain."""

    secret_id: str
    region: str | None = None
    version_stage: str = "AWSCURRENT"
    auth_mode: AuthMode = "bearer"
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
    auth_mode: AuthMode = "bearer"
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
        return "bearer"
    value = raw.lower()
    if value == "bearer":
        return "bearer"
    if value == "basic":
        return "basic"
    raise ConfigurationError(
        f"{name}={raw!r} is not an auth mode: use 'bearer' (default) or 'basic'", variable=name
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
