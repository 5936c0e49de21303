"""Backend name → implementation, imported lazily so no SDK loads until it is used."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from ..settings import BackendSettings
    from .base import Backend

#: module, class and the pip extra that provides its SDK, per backend name.
_IMPLEMENTATIONS = {
    "vault": ("vault", "VaultBackend", "vault", "hvac"),
    "aws-secrets-manager": ("aws", "AwsSecretsManagerBackend", "aws", "boto3"),
    "azure-key-vault": ("azure", "AzureKeyVaultBackend", "azure", "azure.keyvault.secrets"),
}


def sdk_module(name: str) -> str:
    """The import name of the SDK a backend needs (for `info` and `doctor`)."""
    return _IMPLEMENTATIONS[name][3]


def install_command(name: str) -> str:
    """What installs a backend's SDK, e.g. ``pip install 'mlflow-secrets-auth[aws]'``."""
    return f"pip install 'mlflow-secrets-auth[{_IMPLEMENTATIONS[name][2]}]'"


def sdk_missing(name: str) -> str:
    """The one sentence for an enabled backend whose SDK cannot be imported."""
    return (
        f"{name} is enabled but its SDK ({sdk_module(name)}) is not installed: "
        f"{install_command(name)}"
    )


def create_backend(settings: BackendSettings) -> Backend:
    """Instantiate the backend for these settings, with a clear error if its SDK is missing."""
    module_name, class_name, _, sdk = _IMPLEMENTATIONS[settings.backend_name]
    try:
        importlib.import_module(sdk)
    except ImportError:
        raise ConfigurationError(sdk_missing(settings.backend_name)) from None
    module = importlib.import_module(f"{__name__}.{module_name}")
    backend: Backend = getattr(module, class_name)(settings)
    return backend
