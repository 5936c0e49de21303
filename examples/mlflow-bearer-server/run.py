"""An MLflow server that accepts bearer tokens, and a job that authenticates with one.

    python examples/mlflow-bearer-server/run.py

Starts `mlflow server --app-name basic-auth` on 127.0.0.1 with basic_auth.ini's configuration
(authorization_function = mlflow_bearer_auth:authenticate); creates a user and issues it an API
token as `python mlflow_bearer_auth.py issue USER` does; keeps the token in a file for the
plugin's `file` store (`{"token": ...}`: the plugin sends `Authorization: Bearer`); runs an
ordinary MLflow script with the variables below; revokes the token and shows the server refuse
it; stops the server.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import mlflow_bearer_auth
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for _common

from _common import User, mlflow_server, run_job, say


def main() -> int:
    with mlflow_server() as server, tempfile.TemporaryDirectory() as tmp:
        user = User(server, "bearer")
        token = mlflow_bearer_auth.issue(server.tokens_file, user.name)
        say(f"Issued an API token for {user.name!r}; the server's tokens file keeps its SHA-256")
        path = Path(tmp) / "mlflow-token.json"
        path.write_text(json.dumps({"token": token}))
        os.chmod(path, 0o400)
        status = run_job(
            "mlflow-bearer-server",
            server,
            user,
            {"MLFLOW_SECRETS_AUTH_ENABLE": "file", "MLFLOW_FILE_SECRET_PATH": str(path)},
            secret_values=[token],
        )
        revoked = mlflow_bearer_auth.revoke(server.tokens_file, user.name)
        http = requests.Session()
        http.trust_env = False  # the server is on loopback: no proxy
        answer = http.get(
            f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=15,
        )
        http.close()
        say(f"Revoked {revoked} token(s) of {user.name!r}: it now gets HTTP {answer.status_code}")
        if answer.status_code != 401:
            say("FAILED: a revoked token was accepted")
            return 1
        return status


if __name__ == "__main__":
    raise SystemExit(main())
