"""Azure Key Vault through azure-keyvault-secrets, authenticated by ``DefaultAzureCredential`` (so a
service principal, workload identity, managed identity, ``az login`` and ``AZURE_TOKEN_CREDENTIALS``
all work as they do for any Azure SDK client)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import BackendError, IncompleteConfigurationError, Step
from ..log import get_logger
from ..network import explain
from ..values import digest, flag, http_url, text
from .base import CommonSettings, FetchedSecret, SecretStore, StoreSettings, Variable

if TYPE_CHECKING:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient

logger = get_logger(__name__)
NAME = "azure-key-vault"
T = TypeVar("T")

# Variables azure-identity reads itself; a change to one rebuilds the credential and client.
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


@dataclass(frozen=True, kw_only=True)
class AzureSettings(StoreSettings):
    """Azure Key Vault: which vault and secret; credentials come from DefaultAzureCredential."""

    vault_url: str
    secret_name: str
    secret_version: str | None = None
    verify_challenge_resource: bool = True
    sdk_environment: str = field(default="", repr=False)  # digest of AZURE_SDK_VARIABLES
    backend_name: str = NAME

    @property
    def identity(self) -> str:
        return f"azure-key-vault:{self.vault_url}:{self.secret_name}:{self.secret_version or ''}"

    def describe(self) -> str:
        return (
            f"Azure Key Vault {self.vault_url}, secret {self.secret_name} (version "
            f"{self.secret_version or 'latest'}), credential DefaultAzureCredential"
        )

    def endpoint(self) -> str:
        return f"Key Vault at {self.vault_url}"

    def location(self) -> str:
        return self.secret_name


#: Attempts per HTTP call (the first plus retries); each gets an equal share of
#: MLFLOW_SECRETS_TIMEOUT_SEC, and the vault pipeline is also capped at that in total.
ATTEMPTS = 3
_BACKOFF_FACTOR = 0.25  # seconds; azure-core's default (0.8) is tuned for long batch jobs
_MAX_MESSAGE = 300

_CHAIN_FIX = (
    "the DefaultAzureCredential chain: a service principal (AZURE_TENANT_ID, AZURE_CLIENT_ID "
    "with AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH), workload identity "
    "(AZURE_FEDERATED_TOKEN_FILE), a managed identity (AZURE_CLIENT_ID picks a user-assigned "
    "one; IDENTITY_ENDPOINT/IDENTITY_HEADER on App Service), or `az login`; "
    "AZURE_TOKEN_CREDENTIALS pins one credential (e.g. ManagedIdentityCredential) or a group "
    "(prod, dev)"
)
_PERMISSION_FIX = (
    "Key Vault 'get' permission on secrets for this identity (RBAC role Key Vault Secrets User "
    "on the vault or the secret, or an access policy granting secret get)"
)


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _credential_attempts(error: ClientAuthenticationError) -> str:
    """The per-credential reasons of a DefaultAzureCredential failure, on one line."""
    text = str(getattr(error, "message", None) or error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    attempts = [line for line in lines if line.split(":", 1)[0].endswith("Credential")]
    return _short(
        "; ".join(attempts) if attempts else (lines[0] if lines else type(error).__name__)
    )


def _service_error(error: HttpResponseError) -> tuple[str, str, str]:
    """(code, inner code, message) from a Key Vault error body."""
    body = getattr(error, "error", None)
    code = str(getattr(body, "code", None) or "")
    inner = getattr(body, "innererror", None) or {}
    inner_code = str(inner.get("code") or "") if isinstance(inner, dict) else ""
    message = str(getattr(body, "message", None) or getattr(error, "reason", None) or "")
    return code, inner_code, _short(message)


class AzureKeyVaultStore(SecretStore[AzureSettings]):
    """Reads one secret (latest or pinned version); keeps one credential and one SecretClient,
    so the access token and the vault's authentication challenge are reused between fetches."""

    name = NAME
    prefix = "MLFLOW_AZURE"
    variables = (
        Variable(
            "MLFLOW_AZURE_KEY_VAULT_URL", "vault_url", "the vault URL, https://NAME.vault.azure.net"
        ),
        Variable("AZURE_KEY_VAULT_URL", None, "alias of MLFLOW_AZURE_KEY_VAULT_URL"),
        Variable("MLFLOW_AZURE_SECRET_NAME", "secret_name", "the secret's name"),
        Variable("MLFLOW_AZURE_SECRET_VERSION", "secret_version", "a pinned version", "latest"),
        Variable(
            "MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE",
            "verify_challenge_resource",
            "false for private endpoints and custom domains",
            "true",
        ),
        *(
            Variable(n, None, "read by azure-identity's own chain", sdk=True)
            for n in AZURE_SDK_VARIABLES
        ),
    )
    sdk_module = "azure.keyvault.secrets"
    sdk_install = "mlflow-secrets-auth[azure]"

    def __init__(self, settings: AzureSettings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()
        self._client: SecretClient | None = None
        self._credential: DefaultAzureCredential | None = None

    def fetch(self) -> FetchedSecret:
        s = self.settings
        client = self._get_client()
        secret = self._call("read", lambda: client.get_secret(s.secret_name, s.secret_version))
        version = secret.properties.version
        where = self._where()
        if secret.value is None:
            raise BackendError(
                NAME, "read", f"{where} has no value", "the secret's value in the Key Vault"
            )
        location = f"{s.vault_url}/secrets/{s.secret_name}/{version or ''}"
        logger.debug("Azure Key Vault secret read (location=%s, version=%s)", location, version)
        return FetchedSecret(str(secret.value), version=version, location=location)

    def close(self) -> None:
        """Close the vault client's and the credential's HTTP sessions."""
        with self._lock:
            client, self._client = self._client, None
            credential, self._credential = self._credential, None
        if client is not None:
            client.close()
        if credential is not None:
            credential.close()

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> AzureSettings:
        url_var = (
            "MLFLOW_AZURE_KEY_VAULT_URL"
            if text(env, "MLFLOW_AZURE_KEY_VAULT_URL")
            else "AZURE_KEY_VAULT_URL"
        )
        missing = []
        if not text(env, url_var):
            missing.append("MLFLOW_AZURE_KEY_VAULT_URL (or AZURE_KEY_VAULT_URL)")
        if not text(env, "MLFLOW_AZURE_SECRET_NAME"):
            missing.append("MLFLOW_AZURE_SECRET_NAME")
        if missing:
            raise IncompleteConfigurationError(NAME, missing)
        return AzureSettings(
            **common.kwargs(),
            vault_url=http_url(
                env, url_var, https_only=True, example="https://myvault.vault.azure.net"
            ),
            secret_name=text(env, "MLFLOW_AZURE_SECRET_NAME") or "",
            secret_version=text(env, "MLFLOW_AZURE_SECRET_VERSION"),
            verify_challenge_resource=flag(env, "MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE", True),
            sdk_environment=digest(env, AZURE_SDK_VARIABLES),
        )

    # -- client --------------------------------------------------------------------------------

    def _get_client(self) -> SecretClient:
        with self._lock:
            if self._client is None:
                self._client = self._call("login", self._new_client)
                logger.debug(
                    "Azure Key Vault client created (vault=%s, verify_challenge_resource=%s)",
                    self.settings.vault_url,
                    self.settings.verify_challenge_resource,
                )
            return self._client

    def _new_client(self) -> SecretClient:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient

        s = self.settings
        per_attempt = s.timeout_sec / ATTEMPTS
        transport: dict[str, Any] = {
            "connection_timeout": per_attempt,
            "read_timeout": per_attempt,
            "retry_total": ATTEMPTS - 1,
            "retry_backoff_factor": _BACKOFF_FACTOR,
        }
        if self._credential is None:
            # Reads AZURE_* / IDENTITY_* now; the settings digest rebuilds us when they change.
            self._credential = DefaultAzureCredential(
                process_timeout=max(1, round(s.timeout_sec)), **transport
            )
        return SecretClient(
            vault_url=s.vault_url,
            credential=self._credential,
            verify_challenge_resource=s.verify_challenge_resource,
            timeout=s.timeout_sec,  # azure-core's RetryPolicy: total time across attempts
            **transport,
        )

    # -- error mapping -------------------------------------------------------------------------

    def _where(self) -> str:
        s = self.settings
        version = f" (version {s.secret_version})" if s.secret_version else ""
        return f"{s.secret_name}{version} in {s.vault_url}"

    def _call(self, step: Step, action: Callable[[], T]) -> T:
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )
        from azure.identity import CredentialUnavailableError

        s = self.settings
        try:
            return action()
        except ResourceNotFoundError as error:
            code, _, message = _service_error(error)
            fix = "MLFLOW_AZURE_SECRET_NAME and MLFLOW_AZURE_KEY_VAULT_URL"
            if s.secret_version:
                fix = "MLFLOW_AZURE_SECRET_VERSION, " + fix
            raise BackendError(
                NAME,
                "read",
                f"Secret not found: {self._where()} ({code or 'HTTP 404'}: {message})",
                f"{fix}; `az keyvault secret list --vault-name <vault>` (a soft-deleted secret "
                "must be recovered first)",
            ) from None
        except CredentialUnavailableError as error:
            raise BackendError(
                NAME,
                "login",
                f"no credential in the DefaultAzureCredential chain is available "
                f"({_credential_attempts(error)})",
                _CHAIN_FIX,
            ) from None
        except ClientAuthenticationError as error:
            response = getattr(error, "response", None)
            if response is not None and getattr(error, "status_code", None) == 401:
                code, _, message = _service_error(error)
                raise BackendError(
                    NAME,
                    "login",
                    f"Key Vault at {s.vault_url} rejected the access token (HTTP 401"
                    f"{', ' + code if code else ''}{': ' + message if message else ''})",
                    "that the identity belongs to the vault's tenant (AZURE_TENANT_ID, "
                    f"AZURE_CLIENT_ID) and {_CHAIN_FIX}",
                ) from None
            raise BackendError(
                NAME,
                "login",
                f"could not get an access token for Key Vault ({_credential_attempts(error)})",
                _CHAIN_FIX,
            ) from None
        except HttpResponseError as error:
            raise self._response_error(error) from None
        except (ServiceRequestError, ServiceResponseError) as error:
            detail, fix = explain(error, f"Key Vault at {s.vault_url}", s.timeout_sec)
            raise BackendError(
                NAME, "connect", detail, f"MLFLOW_AZURE_KEY_VAULT_URL and {fix}"
            ) from None
        except ValueError as error:
            said = str(error)
            if "challenge" in said.lower():
                # The 401 challenge names a resource whose domain is not the vault URL's.
                raise BackendError(
                    NAME,
                    "connect",
                    f"the authentication challenge from {s.vault_url} does not match the vault's "
                    f"domain ({_short(said.split('. Pass')[0])})",
                    "MLFLOW_AZURE_KEY_VAULT_URL; for a private endpoint or custom domain you "
                    "trust, set MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE=false",
                ) from None
            if "AZURE_TOKEN_CREDENTIALS" in said:
                raise BackendError(NAME, "login", _short(said), "AZURE_TOKEN_CREDENTIALS") from None
            raise
        except AzureError as error:
            raise BackendError(
                NAME,
                step,
                f"the Azure SDK failed ({type(error).__name__})",
                "MLFLOW_SECRETS_LOG_LEVEL=DEBUG and the azure logs for details",
            ) from None

    def _response_error(self, error: HttpResponseError) -> BackendError:
        s = self.settings
        status = getattr(error, "status_code", None)
        code, inner, message = _service_error(error)
        said = "/".join(c for c in (code, inner) if c) or f"HTTP {status}"
        said = f"{said}: {message}" if message else said
        where = self._where()
        if status == 403:
            if inner == "SecretDisabled" or "disabled" in message.lower():
                return BackendError(
                    NAME,
                    "read",
                    f"the secret {where} is disabled ({said})",
                    "enable it (az keyvault secret set-attributes --enabled true) or pin "
                    "MLFLOW_AZURE_SECRET_VERSION to an enabled version",
                )
            if inner in ("ForbiddenByFirewall", "ForbiddenByConnection"):
                return BackendError(
                    NAME,
                    "connect",
                    f"the vault's network rules refuse this client ({said})",
                    "the vault's firewall and virtual network rules, or use its private endpoint",
                )
            return BackendError(
                NAME, "read", f"access to {where} is forbidden ({said})", _PERMISSION_FIX
            )
        if status == 429:
            return BackendError(
                NAME,
                "read",
                f"Key Vault throttled the read of {where}; retried {ATTEMPTS - 1} times",
                "the request rate on this vault: raise MLFLOW_AZURE_TTL_SEC so processes fetch "
                "less often",
            )
        return BackendError(
            NAME,
            "read",
            f"Key Vault answered HTTP {status} for {where} ({said})",
            f"the vault's health and MLFLOW_AZURE_KEY_VAULT_URL={s.vault_url}",
        )
