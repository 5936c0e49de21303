"""mlflow-secrets-auth: MLflow credentials from Vault, AWS Secrets Manager or Azure Key Vault.

Importing this package is cheap: no I/O, no backend SDK, no MLflow, no requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"
__all__ = ["SecretsAuthProviderFactory", "__version__", "get_auth"]

if TYPE_CHECKING:
    from .auth import PluginAuth
    from .plugin import SecretsAuthProviderFactory


def get_auth() -> PluginAuth:
    """A ``requests`` auth object for direct use: ``requests.get(url, auth=get_auth())``.

    Raises ConfigurationError when no backend is enabled or the configuration is unusable.
    """
    from .errors import ConfigurationError
    from .runtime import current_auth

    auth = current_auth()
    if auth is None:
        raise ConfigurationError(
            "no secrets backend is enabled: set MLFLOW_SECRETS_AUTH_ENABLE (e.g. to vault)",
            variable="MLFLOW_SECRETS_AUTH_ENABLE",
        )
    return auth


def __getattr__(name: str) -> Any:
    if name == "SecretsAuthProviderFactory":
        from .plugin import SecretsAuthProviderFactory

        return SecretsAuthProviderFactory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
