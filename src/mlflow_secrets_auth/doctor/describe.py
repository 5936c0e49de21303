"""How a backend's settings are named in check text.

Configuration, the credential chain and the dry run all speak of the same backend; sharing
the wording keeps their details consistent. Only locations, modes and user names appear here.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..modes import mode_in_effect
from ..settings import BackendSettings, VaultSettings


def _describe(settings: BackendSettings, env: Mapping[str, str]) -> str:
    mode = "auth mode " + mode_in_effect(env, settings.backend_name, settings.auth_mode)
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
