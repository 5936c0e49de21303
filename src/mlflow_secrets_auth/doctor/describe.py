"""How a backend's settings are named in check text.

Configuration, the credential chain and the dry run all speak of the same backend; sharing
the wording keeps their details consistent. Only locations, modes and user names appear here.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..backends.vault_settings import VaultSettings
from ..modes import mode_in_effect
from ..settings import BackendSettings


def _describe(settings: BackendSettings, env: Mapping[str, str]) -> str:
    mode = "auth mode " + mode_in_effect(env, settings.backend_name, settings.auth_mode)
    return f"{settings.describe()}, {mode}"


def _target(settings: BackendSettings) -> str:
    return settings.endpoint()


def _login_passed(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        if settings.login_method == "token":
            return f"{settings.login_description}: Vault accepted the token for the read"
        return f"{settings.login_description} succeeded"
    return f"{settings.endpoint()} accepted the store's credentials"


def _secret_name(settings: BackendSettings) -> str:
    return settings.location()
