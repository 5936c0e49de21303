"""GCP Secret Manager: the MLflow credential in a secret, read with Application Default
Credentials (here a service-account key file; on GKE, Cloud Run or a VM, the attached account).

    python examples/gcp-secret-manager/run.py

Starts a loopback Secret Manager (HTTPS, the REST API as the client library speaks it) and an
MLflow server with authentication, on 127.0.0.1; stores a new MLflow user's credential as the
secret mlflow-training; runs an ordinary MLflow script with the variables below; stops both.
No Secret Manager emulator exists: the stand-in is the one the tests use.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for _common

from _common import User, mlflow_server, run_job, say
from support.azure_keyvault_fake import make_tls_files
from support.gcp_secret_manager_fake import (
    PROJECT,
    SecretManagerFake,
    make_service_account_key,
)
from support.ports import LOOPBACK, free_port

SECRET = f"projects/{PROJECT}/secrets/mlflow-training"


def main() -> int:
    with mlflow_server() as server, tempfile.TemporaryDirectory() as tmp:
        user = User(server, "gcp")
        say("Starting a loopback Secret Manager on 127.0.0.1 ...")
        tls = make_tls_files(Path(tmp) / "tls")
        key = make_service_account_key(Path(tmp) / "keys")
        secrets_api = SecretManagerFake(tls).start()
        try:
            secrets_api.trust(key)
            secrets_api.add_version(SECRET, json.dumps(user.basic_secret))
            say(f"  Secret Manager: {secrets_api.url}; the credential is {SECRET}")
            no_metadata_server = f"{LOOPBACK}:{free_port()}"
            return run_job(
                "gcp-secret-manager",
                server,
                user,
                {
                    "MLFLOW_SECRETS_AUTH_ENABLE": "gcp-secret-manager",
                    "MLFLOW_GCP_SECRET_NAME": SECRET,
                    # Not needed where the workload has an attached service account.
                    "GOOGLE_APPLICATION_CREDENTIALS": str(key.path),
                },
                local_env={
                    "MLFLOW_GCP_ENDPOINT": secrets_api.url,
                    "REQUESTS_CA_BUNDLE": str(tls.cert_path),  # a self-signed certificate
                    # Keep google-auth off your gcloud login and any metadata server.
                    "CLOUDSDK_CONFIG": str(Path(tmp) / "gcloud"),
                    "GCE_METADATA_HOST": no_metadata_server,
                    "GCE_METADATA_IP": no_metadata_server,
                    "NO_GCE_CHECK": "true",
                },
                secret_values=[key.private_key_pem],
                issued_secrets=lambda: secrets_api.bearers,
            )
        finally:
            secrets_api.stop()
            say("Stopped the Secret Manager stand-in")


if __name__ == "__main__":
    raise SystemExit(main())
