"""Azure Key Vault: the MLflow credential in a Key Vault secret, read with the job's managed
identity through azure-identity's DefaultAzureCredential.

    python examples/azure-key-vault/run.py

Starts a loopback Key Vault (HTTPS, the secrets API as the SDK speaks it) with a managed-identity
token endpoint, and an MLflow server with authentication, on 127.0.0.1; stores a new MLflow user's
credential as the secret mlflow-training; runs an ordinary MLflow script with the variables below;
stops them all. No Key Vault emulator exists: the stand-in is the one the tests use.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for _common

from _common import User, mlflow_server, run_job, say
from support.azure_keyvault_fake import (
    IdentityEndpointFake,
    KeyVaultFake,
    make_tls_files,
)
from support.ports import LOOPBACK, free_port

SECRET_NAME = "mlflow-training"


def main() -> int:
    with mlflow_server() as server, tempfile.TemporaryDirectory() as tmp:
        user = User(server, "azure")
        say("Starting a loopback Key Vault and managed-identity endpoint on 127.0.0.1 ...")
        tls = make_tls_files(Path(tmp))
        identity = IdentityEndpointFake().start()
        vault = KeyVaultFake(tls, identity).start()
        try:
            vault.set_secret(SECRET_NAME, json.dumps(user.basic_secret))
            say(f"  Key Vault: {vault.url}; the credential is the secret {SECRET_NAME!r}")
            return run_job(
                "azure-key-vault",
                server,
                user,
                {
                    "MLFLOW_SECRETS_AUTH_ENABLE": "azure-key-vault",
                    "MLFLOW_AZURE_KEY_VAULT_URL": vault.url,
                    "MLFLOW_AZURE_SECRET_NAME": SECRET_NAME,
                },
                local_env={
                    # What App Service, Functions or Container Apps set for a managed identity.
                    **identity.env(),
                    # Use the managed identity only (no probing for other credentials).
                    "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
                    "AZURE_POD_IDENTITY_AUTHORITY_HOST": f"http://{LOOPBACK}:{free_port()}",
                    # The stand-in's certificate is self-signed, and its host is not under
                    # vault.azure.net (as with a private endpoint or a custom domain).
                    "REQUESTS_CA_BUNDLE": str(tls.cert_path),
                    "MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE": "false",
                },
                secret_values=[identity.header_secret],
                issued_secrets=lambda: identity.issued,
            )
        finally:
            vault.stop()
            identity.stop()
            say("Stopped the Key Vault stand-in")


if __name__ == "__main__":
    raise SystemExit(main())
