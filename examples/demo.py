"""End-to-end demo: MLflow credentials kept in Vault, used by unchanged MLflow code.

1. starts a real OpenBao (Vault-compatible) dev server and a real MLflow tracking server with
   authentication, both on 127.0.0.1;
2. creates an MLflow user and stores its username/password in Vault at secret/mlflow/auth;
3. runs examples/train.py, an ordinary MLflow script, with MLFLOW_TRACKING_AUTH=mlflow_secrets_auth;
4. rotates the password on the server and in Vault, and shows the next call recover through one
   401 replay, without a restart;
5. stops both servers.
"""

from __future__ import annotations

import logging
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "testbed"))  # the same local-server helpers the tests use

from support.mlflow_server import MlflowAuthServer  # noqa: E402
from support.openbao import OpenBaoServer, openbao_unavailable_reason  # noqa: E402

SECRET_PATH = "secret/mlflow/auth"


def step(number: int, text: str) -> None:
    print(f"\n[{number}] {text}", flush=True)


def main() -> int:
    reason = openbao_unavailable_reason()
    if reason:
        print(f"The demo needs the OpenBao server binary: {reason}", file=sys.stderr)
        return 1
    step(1, "Starting OpenBao (Vault API) and an authenticated MLflow server on 127.0.0.1 ...")
    with OpenBaoServer() as vault, MlflowAuthServer() as server:
        print(f"  Vault:  {vault.addr}\n  MLflow: {server.url} (basic-auth app)")

        step(
            2,
            f"Creating MLflow user 'trainer' and storing its credentials in Vault ({SECRET_PATH})",
        )
        password = "pw-" + secrets.token_urlsafe(16)
        server.create_user("trainer", password)
        vault.write_secret("secret", "mlflow/auth", {"username": "trainer", "password": password})
        env = {
            "MLFLOW_TRACKING_URI": server.url,
            "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
            "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
            "VAULT_ADDR": vault.addr,
            "VAULT_TOKEN": vault.root_token,
            "MLFLOW_VAULT_SECRET_PATH": SECRET_PATH,
            "MLFLOW_VAULT_AUTH_MODE": "basic",
        }
        os.environ.update(env)
        print("  environment for the job:")
        for name in env:
            shown = "(set)" if name == "VAULT_TOKEN" else env[name]
            print(f"    {name}={shown}")

        step(3, "Running examples/train.py, an unchanged MLflow script, through the plugin")
        subprocess.run([sys.executable, str(ROOT / "examples" / "train.py")], check=True)

        step(4, "Rotating the password on the server and in Vault, while this process is running")
        import mlflow
        from mlflow import MlflowClient

        logger = logging.getLogger("mlflow_secrets_auth")
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("  plugin: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)

        client = MlflowClient()
        experiment = client.get_experiment_by_name("demo-experiment")
        print(f"  before rotation: experiment id {experiment.experiment_id} (credential cached)")
        new_password = "pw-" + secrets.token_urlsafe(16)
        server.update_password("trainer", new_password)
        vault.write_secret(
            "secret", "mlflow/auth", {"username": "trainer", "password": new_password}
        )
        print("  password changed on the MLflow server and in Vault")
        with mlflow.start_run(experiment_id=experiment.experiment_id, run_name="after-rotation"):
            mlflow.log_metric("recovered", 1.0)
        from mlflow_secrets_auth.runtime import CACHE

        print(
            "  after rotation: a new run was logged without restarting anything "
            f"(credentials dropped after a 401: {CACHE.stats.invalidations}, "
            f"Vault reads in this process: {CACHE.stats.fetches})"
        )
        logger.removeHandler(handler)

        step(5, "Stopping both servers")
    print("\nDone: every MLflow call was authenticated with the credential kept in Vault.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
