"""HashiCorp Vault / OpenBao (SPEC §3): the store and the variables it reads.

Token, AppRole, Kubernetes and JWT/OIDC login (GitHub Actions' job token included), the
Vault CLI's ``~/.vault-token`` as the fallback, KV v1 or v2 at any mount. This module holds
the declarations, :mod:`.vault_settings` the settings and loader; the hvac client lives in
:mod:`.vault_client`, imported at the first fetch, so ``info`` and ``doctor`` can describe a
Vault setup without loading hvac.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from .base import CommonSettings, FetchedSecret, SecretStore, Variable
from .vault_settings import DEFAULT_K8S_TOKEN_PATH, NAME, VaultSettings, load_vault_settings

if TYPE_CHECKING:
    from .vault_client import VaultClient


class VaultStore(SecretStore[VaultSettings]):
    """Reads one KV secret; one hvac client (with its login token and lease) per store."""

    name = NAME
    prefix = "MLFLOW_VAULT"
    variables = (
        Variable("VAULT_ADDR", "addr", "the Vault/OpenBao address, e.g. https://vault:8200"),
        Variable(
            "MLFLOW_VAULT_SECRET_PATH",
            "secret_path",
            "<mount>/<path> of the secret (KV v1 or v2, with or without v2's data/)",
        ),
        Variable("VAULT_NAMESPACE", "namespace", "the Vault Enterprise / OpenBao namespace"),
        Variable("VAULT_CACERT", "cacert", "a CA bundle that signs the Vault server certificate"),
        Variable("VAULT_SKIP_VERIFY", "skip_verify", "skip TLS verification (tests only)", "false"),
        Variable(
            "MLFLOW_VAULT_AUTH_METHOD",
            "auth_method",
            "force one login method: token, approle, kubernetes or jwt",
        ),
        Variable("VAULT_TOKEN", None, "a Vault token (token login)", secret=True),
        Variable(
            "MLFLOW_VAULT_RENEW_TOKEN", "renew_token", "renew a user-supplied token too", "false"
        ),
        Variable("VAULT_ROLE_ID", "role_id", "the AppRole role id"),
        Variable("VAULT_SECRET_ID", None, "the AppRole secret id", secret=True),
        Variable(
            "MLFLOW_VAULT_SECRET_ID_PATH",
            "secret_id_path",
            "a file holding the AppRole secret id, read at every login",
            replaces="VAULT_SECRET_ID",
        ),
        Variable("MLFLOW_VAULT_APPROLE_MOUNT", "approle_mount", "the AppRole mount", "approle"),
        Variable("MLFLOW_VAULT_K8S_ROLE", "k8s_role", "the Kubernetes auth role"),
        Variable(
            "MLFLOW_VAULT_K8S_TOKEN_PATH",
            "k8s_token_path",
            "the service-account token, read at every login",
            DEFAULT_K8S_TOKEN_PATH,
        ),
        Variable("MLFLOW_VAULT_K8S_MOUNT", "k8s_mount", "the Kubernetes auth mount", "kubernetes"),
        Variable("MLFLOW_VAULT_JWT_ROLE", "jwt_role", "the JWT/OIDC auth role"),
        Variable("MLFLOW_VAULT_JWT_TOKEN_PATH", "jwt_token_path", "a file holding the job's JWT"),
        Variable("MLFLOW_VAULT_JWT_TOKEN", None, "the job's JWT itself", secret=True),
        Variable("MLFLOW_VAULT_JWT_MOUNT", "jwt_mount", "the JWT/OIDC auth mount", "jwt"),
        Variable(
            "MLFLOW_VAULT_JWT_AUDIENCE",
            "jwt_audience",
            "the audience of the GitHub Actions OIDC token",
        ),
        Variable(
            "ACTIONS_ID_TOKEN_REQUEST_URL",
            None,
            "set by GitHub Actions: where the job's OIDC token is requested",
            sdk=True,
        ),
        Variable(
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
            None,
            "set by GitHub Actions: the bearer token for that request",
            secret=True,
        ),
        Variable("HOME", None, "where the Vault CLI's ~/.vault-token is", sdk=True),
    )
    sdk_module = "hvac"
    sdk_install = "mlflow-secrets-auth[vault]"

    def __init__(self, settings: VaultSettings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()
        self._client: VaultClient | None = None

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> VaultSettings:
        return load_vault_settings(env, common)

    @property
    def client(self) -> VaultClient:
        """The hvac-backed client, created at first use (this is where hvac is imported)."""
        with self._lock:
            if self._client is None:
                from .vault_client import VaultClient

                self._client = VaultClient(self.settings)
            return self._client

    def fetch(self) -> FetchedSecret:
        return self.client.fetch()

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
