"""The MLflow request-auth provider (entry point group ``mlflow.request_auth_provider``).

MLflow instantiates this class when it loads its plugins and calls ``get_auth()`` for every
request, without telling us the URL; the returned auth object checks each real URL itself.
Nothing here does I/O or imports MLflow or a backend SDK at import or construction time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .auth import PluginAuth

PROVIDER_NAME = "mlflow_secrets_auth"


class SecretsAuthProviderFactory:
    """Duck-typed ``mlflow.tracking.request_auth.RequestAuthProvider``."""

    def get_name(self) -> str:
        return PROVIDER_NAME

    def get_auth(self) -> PluginAuth | None:
        """The auth object for the current environment, or None when no backend is enabled."""
        from .runtime import current_auth

        # MLflow calls this for every request: from now on it reaches the runtime directly.
        self.get_auth = current_auth  # type: ignore[method-assign]
        return current_auth()

    def get_request_auth(self, url: str) -> PluginAuth | None:
        """Like get_auth, but refuses up front when ``url`` may not receive credentials."""
        from .runtime import current_auth

        auth = current_auth()
        if auth is not None:
            auth.check(url)
        return auth

    def __repr__(self) -> str:
        return "SecretsAuthProviderFactory()"
