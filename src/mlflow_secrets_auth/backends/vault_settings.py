"""Vault's settings and their loader: where the secret is and how the plugin logs in.

The store module (:mod:`.vault`) declares the variables and the client module
(:mod:`.vault_client`) uses these settings; both import this one, which imports neither.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from ..errors import ConfigurationError, IncompleteConfigurationError
from ..values import flag, http_url, text
from .base import CommonSettings, StoreSettings

NAME = "vault"
VaultLoginMethod = Literal["token", "approle", "kubernetes", "jwt"]
VAULT_LOGIN_METHODS: tuple[VaultLoginMethod, ...] = ("token", "approle", "kubernetes", "jwt")
DEFAULT_K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: Where the Vault CLI keeps the token of `vault login` (its default token helper).
VAULT_TOKEN_FILE = ".vault-token"


@dataclass(frozen=True, kw_only=True)
class VaultSettings(StoreSettings):
    """HashiCorp Vault / OpenBao: where the secret is and how to log in."""

    addr: str
    secret_path: str
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
    backend_name: str = NAME

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

    def describe(self) -> str:
        ns = f", namespace {self.namespace}" if self.namespace else ""
        return f"Vault at {self.addr}{ns}, secret {self.secret_path}, {self.login_description}"

    def endpoint(self) -> str:
        return f"Vault at {self.addr}"

    def location(self) -> str:
        return self.secret_path


_VAULT_LOGIN_CHOICES = (
    "VAULT_TOKEN (or AppRole VAULT_ROLE_ID with VAULT_SECRET_ID or MLFLOW_VAULT_SECRET_ID_PATH, "
    "Kubernetes MLFLOW_VAULT_K8S_ROLE, JWT MLFLOW_VAULT_JWT_ROLE, or the Vault CLI's "
    "~/.vault-token from `vault login`)"
)


def _vault_token_file(env: Mapping[str, str]) -> str | None:
    """The Vault CLI's ``~/.vault-token``, when it exists (read again at each use)."""
    home = text(env, "HOME") or os.path.expanduser("~")
    if not home or home == "~":
        return None
    path = os.path.join(home, VAULT_TOKEN_FILE)
    return path if os.path.isfile(path) else None


def _github_oidc(env: Mapping[str, str]) -> tuple[str, str] | None:
    url = text(env, "ACTIONS_ID_TOKEN_REQUEST_URL")
    token = text(env, "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    return (url, token) if url and token else None


def _vault_login_missing(
    env: Mapping[str, str], method: VaultLoginMethod, token_file: str | None
) -> list[str]:
    """What ``method`` still lacks to log in (empty: it can be used)."""
    missing: list[str] = []
    if method == "token":
        if not (text(env, "VAULT_TOKEN") or token_file):
            missing.append("VAULT_TOKEN (or the Vault CLI's ~/.vault-token from `vault login`)")
    elif method == "approle":
        if not text(env, "VAULT_ROLE_ID"):
            missing.append("VAULT_ROLE_ID")
        if not (text(env, "VAULT_SECRET_ID") or text(env, "MLFLOW_VAULT_SECRET_ID_PATH")):
            missing.append("VAULT_SECRET_ID (or MLFLOW_VAULT_SECRET_ID_PATH)")
    elif method == "kubernetes":
        if not text(env, "MLFLOW_VAULT_K8S_ROLE"):
            missing.append("MLFLOW_VAULT_K8S_ROLE")
    else:
        if not text(env, "MLFLOW_VAULT_JWT_ROLE"):
            missing.append("MLFLOW_VAULT_JWT_ROLE")
        given = text(env, "MLFLOW_VAULT_JWT_TOKEN_PATH") or text(env, "MLFLOW_VAULT_JWT_TOKEN")
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
    forced = text(env, "MLFLOW_VAULT_AUTH_METHOD")
    if forced is not None:
        by_name: dict[str, VaultLoginMethod] = {m: m for m in VAULT_LOGIN_METHODS}
        chosen = by_name.get(forced.lower())
        if chosen is None:
            raise ConfigurationError(
                "MLFLOW_VAULT_AUTH_METHOD is not a Vault login method: use one of "
                f"{', '.join(VAULT_LOGIN_METHODS)}",
                variable="MLFLOW_VAULT_AUTH_METHOD",
            )
        missing = _vault_login_missing(env, chosen, token_file)
        return (None, missing) if missing else (chosen, [])
    if text(env, "VAULT_TOKEN"):
        return "token", []
    for candidate in VAULT_LOGIN_METHODS[1:]:
        if not _vault_login_missing(env, candidate, token_file):
            return candidate, []
    attempted: dict[VaultLoginMethod, tuple[str, ...]] = {
        "approle": ("VAULT_ROLE_ID", "VAULT_SECRET_ID", "MLFLOW_VAULT_SECRET_ID_PATH"),
        "jwt": ("MLFLOW_VAULT_JWT_ROLE", "MLFLOW_VAULT_JWT_TOKEN", "MLFLOW_VAULT_JWT_TOKEN_PATH"),
    }
    for candidate, names in attempted.items():
        if any(text(env, name) for name in names):
            return None, _vault_login_missing(env, candidate, token_file)
    if token_file:
        return "token", []
    return None, [_VAULT_LOGIN_CHOICES]


def _one_of(env: Mapping[str, str], first: str, second: str) -> None:
    if text(env, first) and text(env, second):
        raise ConfigurationError(
            f"both {first} and {second} are set: set only one of them", variable=second
        )


def load_vault_settings(env: Mapping[str, str], common: CommonSettings) -> VaultSettings:
    """Vault's settings from ``env`` (variable names → values); SPEC §3's login order."""
    missing = [n for n in ("VAULT_ADDR", "MLFLOW_VAULT_SECRET_PATH") if not text(env, n)]
    token_file = _vault_token_file(env)
    method, login_missing = _vault_login_method(env, token_file)
    missing += login_missing
    if missing or method is None:
        raise IncompleteConfigurationError(NAME, missing)
    secret_path = (text(env, "MLFLOW_VAULT_SECRET_PATH") or "").strip("/")
    if "/" not in secret_path:
        raise ConfigurationError(
            "MLFLOW_VAULT_SECRET_PATH must be <mount>/<path>, e.g. secret/mlflow/auth",
            variable="MLFLOW_VAULT_SECRET_PATH",
        )
    token = text(env, "VAULT_TOKEN") if method == "token" else None
    jwt_token = jwt_token_path = None
    github = None
    if method == "approle":
        _one_of(env, "VAULT_SECRET_ID", "MLFLOW_VAULT_SECRET_ID_PATH")
    if method == "jwt":
        _one_of(env, "MLFLOW_VAULT_JWT_TOKEN", "MLFLOW_VAULT_JWT_TOKEN_PATH")
        jwt_token = text(env, "MLFLOW_VAULT_JWT_TOKEN")
        jwt_token_path = text(env, "MLFLOW_VAULT_JWT_TOKEN_PATH")
        github = None if jwt_token or jwt_token_path else _github_oidc(env)
    return VaultSettings(
        **common.kwargs(),
        addr=http_url(env, "VAULT_ADDR", https_only=False, example="https://vault.example:8200"),
        secret_path=secret_path,
        login_method=method,
        token=token,
        token_file=token_file if method == "token" and not token else None,
        renew_token=flag(env, "MLFLOW_VAULT_RENEW_TOKEN", False),
        role_id=text(env, "VAULT_ROLE_ID"),
        secret_id=text(env, "VAULT_SECRET_ID") if method == "approle" else None,
        secret_id_path=text(env, "MLFLOW_VAULT_SECRET_ID_PATH"),
        approle_mount=(text(env, "MLFLOW_VAULT_APPROLE_MOUNT") or "approle").strip("/"),
        k8s_role=text(env, "MLFLOW_VAULT_K8S_ROLE"),
        k8s_token_path=text(env, "MLFLOW_VAULT_K8S_TOKEN_PATH") or DEFAULT_K8S_TOKEN_PATH,
        k8s_mount=(text(env, "MLFLOW_VAULT_K8S_MOUNT") or "kubernetes").strip("/"),
        jwt_role=text(env, "MLFLOW_VAULT_JWT_ROLE"),
        jwt_token=jwt_token,
        jwt_token_path=jwt_token_path,
        jwt_mount=(text(env, "MLFLOW_VAULT_JWT_MOUNT") or "jwt").strip("/"),
        jwt_audience=text(env, "MLFLOW_VAULT_JWT_AUDIENCE"),
        github_oidc_url=github[0] if github else None,
        github_oidc_token=github[1] if github else None,
        namespace=(text(env, "VAULT_NAMESPACE") or "").strip("/") or None,
        cacert=text(env, "VAULT_CACERT"),
        skip_verify=flag(env, "VAULT_SKIP_VERIFY", False),
    )
