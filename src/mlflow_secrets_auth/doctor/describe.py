"""How a backend's settings are named in check text.

Configuration, the credential chain and the dry run all speak of the same backend; sharing
the wording keeps their details consistent. Only locations, modes and user names appear here.
"""

from __future__ import annotations

from ..settings import BackendSettings, VaultSettings, store_prefix


def mode_variable(settings: BackendSettings) -> str:
    """The variable that sets this store's auth mode, e.g. MLFLOW_VAULT_AUTH_MODE."""
    return f"{store_prefix(settings.backend_name)}_AUTH_MODE"


def _describe(settings: BackendSettings) -> str:
    mode = f"auth mode {settings.auth_mode} ({mode_variable(settings)})"
    if isinstance(settings, VaultSettings):
        ns = f", namespace {settings.namespace}" if settings.namespace else ""
        return (
            f"Vault at {settings.addr}{ns}, secret {settings.secret_path}, "
            f"{_vault_login(settings)}, {mode}"
        )
    return f"{settings.describe()}, {mode}"


def _vault_login(settings: VaultSettings) -> str:
    return settings.login_description


def _target(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        return f"Vault at {settings.addr}"
    return settings.endpoint()


def _login_passed(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        if settings.login_method == "token":
            return f"{settings.login_description}: Vault accepted the token for the read"
        return f"{_vault_login(settings)} succeeded"
    return f"{settings.endpoint()} accepted the store's credentials"


def _secret_name(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        return settings.secret_path
    return settings.location()
