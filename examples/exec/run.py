"""exec: any command that prints the MLflow credential becomes the store (a password manager's
CLI, another secret store's CLI, an in-house tool); no SDK.

    python examples/exec/run.py

Starts an MLflow server with authentication on 127.0.0.1; keeps a new MLflow user's credential
where credential_helper.py (the stand-in for your command) reads it; runs an ordinary MLflow
script with the variables below; stops the server.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for _common

from _common import User, mlflow_server, run_job, say

HELPER = Path(__file__).resolve().parent / "credential_helper.py"


def main() -> int:
    with mlflow_server() as server, tempfile.TemporaryDirectory() as tmp:
        user = User(server, "exec")
        kept = Path(tmp) / "credential.json"
        kept.write_text(json.dumps(user.basic_secret))
        os.chmod(kept, 0o600)
        say(f"  the helper will read the credential from {kept}")
        # Split like a shell would, but never run by one: quote arguments with spaces.
        command = shlex.join([sys.executable, str(HELPER), str(kept)])
        return run_job(
            "exec",
            server,
            user,
            {
                "MLFLOW_SECRETS_AUTH_ENABLE": "exec",
                "MLFLOW_EXEC_COMMAND": command,
            },
        )


if __name__ == "__main__":
    raise SystemExit(main())
