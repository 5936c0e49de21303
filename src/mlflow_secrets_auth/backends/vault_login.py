"""What each Vault login method sends, read fresh at every login.

Files (an AppRole secret id, a Kubernetes service-account token, a CI job's JWT, the Vault
CLI's ``~/.vault-token``) are read again each time, so a rotated file is used at the next
login. On GitHub Actions the job's OIDC token is requested from the runner. Errors name the
variable or file to check, never a value.
"""

from __future__ import annotations

import time
from typing import Any

import hvac
import requests

from ..errors import BackendError
from ..log import get_logger, register_secret
from ..network import explain
from .vault_settings import NAME, VaultSettings

logger = get_logger(__name__)


def read_credential_file(path: str, what: str, fix: str) -> str:
    """The stripped contents of a file holding a credential, or a login error naming it."""
    try:
        with open(path, encoding="utf-8") as handle:
            value = handle.read().strip()
    except OSError as error:
        raise BackendError(
            NAME, "login", f"cannot read {what} at {path} ({error.strerror})", fix
        ) from None
    if not value:
        raise BackendError(NAME, "login", f"{what} at {path} is empty", fix)
    register_secret(value)
    return value


def user_token(settings: VaultSettings) -> str:
    """A user-supplied token: VAULT_TOKEN, else the Vault CLI's token file (read again)."""
    if settings.token:
        register_secret(settings.token)
        return settings.token
    assert settings.token_file is not None, "load_vault chose the token method without a token"
    return read_credential_file(
        settings.token_file,
        "the Vault CLI's token file",
        "run `vault login` again, or set VAULT_TOKEN",
    )


def login(client: hvac.Client, settings: VaultSettings, deadline: float) -> dict[str, Any]:
    """Log in with the configured method; hvac keeps the new token on ``client``."""
    s = settings
    if s.login_method == "approle":
        secret_id = s.secret_id
        if secret_id is None:
            assert s.secret_id_path is not None
            secret_id = read_credential_file(
                s.secret_id_path,
                "the AppRole secret id",
                "MLFLOW_VAULT_SECRET_ID_PATH: the file the secret id is delivered to",
            )
        register_secret(secret_id)
        result: dict[str, Any] = client.auth.approle.login(
            role_id=s.role_id, secret_id=secret_id, mount_point=s.approle_mount
        )
        return result
    if s.login_method == "kubernetes":
        jwt = read_credential_file(
            s.k8s_token_path,
            "the Kubernetes service-account token",
            "that the pod mounts a service-account token, or set MLFLOW_VAULT_K8S_TOKEN_PATH",
        )
        result = client.auth.kubernetes.login(role=s.k8s_role, jwt=jwt, mount_point=s.k8s_mount)
        return result
    result = client.auth.jwt.jwt_login(role=s.jwt_role, jwt=job_jwt(s, deadline), path=s.jwt_mount)
    return result


def job_jwt(settings: VaultSettings, deadline: float) -> str:
    """The JWT to present: the file (read again), the variable, or GitHub Actions' OIDC token."""
    s = settings
    if s.jwt_token_path:
        return read_credential_file(
            s.jwt_token_path,
            "the JWT for the Vault JWT login",
            "MLFLOW_VAULT_JWT_TOKEN_PATH: the file your CI writes the job's token to",
        )
    if s.jwt_token:
        register_secret(s.jwt_token)
        return s.jwt_token
    return github_oidc_token(settings, deadline)


def github_oidc_token(settings: VaultSettings, deadline: float) -> str:
    """Ask the GitHub Actions runner for this job's OIDC token (audience if configured)."""
    url, request_token = settings.github_oidc_url, settings.github_oidc_token
    assert url is not None and request_token is not None
    register_secret(request_token)
    fix = (
        "that the workflow grants `permissions: id-token: write`, and MLFLOW_VAULT_JWT_AUDIENCE "
        "(it must be one of the Vault role's bound_audiences)"
    )
    target = "the GitHub Actions OIDC endpoint (ACTIONS_ID_TOKEN_REQUEST_URL)"
    timeout = max(0.5, min(settings.timeout_sec, deadline - time.monotonic()))
    params = {"audience": settings.jwt_audience} if settings.jwt_audience else None
    try:
        response = requests.get(
            url,
            params=params,
            headers={"Authorization": f"bearer {request_token}", "Accept": "application/json"},
            timeout=timeout,
        )
    except requests.RequestException as error:
        detail, check = explain(error, target, timeout)
        raise BackendError(NAME, "login", detail, check) from None
    if response.status_code != 200:
        raise BackendError(NAME, "login", f"{target} answered HTTP {response.status_code}", fix)
    try:
        value = response.json().get("value")
    except (ValueError, AttributeError):
        value = None
    if not isinstance(value, str) or not value:
        raise BackendError(NAME, "login", f"{target} answered without a token", fix)
    register_secret(value)
    logger.debug(
        "GitHub Actions OIDC token obtained (audience=%s)", settings.jwt_audience or "default"
    )
    return value


def login_fix(settings: VaultSettings) -> str:
    """What to check when Vault refuses the login."""
    s = settings
    if s.login_method == "approle":
        source = (
            f"the secret id file MLFLOW_VAULT_SECRET_ID_PATH={s.secret_id_path}"
            if s.secret_id_path
            else "VAULT_SECRET_ID"
        )
        return (
            f"VAULT_ROLE_ID, {source} (expired or used up?) and the AppRole mount "
            f"MLFLOW_VAULT_APPROLE_MOUNT={s.approle_mount}"
        )
    if s.login_method == "kubernetes":
        return (
            f"MLFLOW_VAULT_K8S_ROLE={s.k8s_role}, the role's bound service accounts, and "
            f"MLFLOW_VAULT_K8S_MOUNT={s.k8s_mount}"
        )
    if s.login_method == "jwt":
        return (
            f"MLFLOW_VAULT_JWT_ROLE={s.jwt_role}: the role's bound_audiences (the token's "
            f"audience, MLFLOW_VAULT_JWT_AUDIENCE on GitHub Actions), bound claims and "
            f"user_claim must match the token, and the token must not be expired; the mount "
            f"MLFLOW_VAULT_JWT_MOUNT={s.jwt_mount}"
        )
    return user_token_fix(settings)


def user_token_fix(settings: VaultSettings) -> str:
    if settings.token:
        return (
            "set VAULT_TOKEN to a valid token (`vault login`, or `vault token create`), or use "
            "a login method (AppRole, Kubernetes, JWT) whose tokens are renewed automatically"
        )
    return f"run `vault login` again to refresh {settings.token_origin}, or set VAULT_TOKEN"
