"""file: the MLflow credential in a file something else keeps current (a Kubernetes Secret
volume, a CSI secrets-store mount, a Vault Agent sink), read again when it changes.

    python examples/file/run.py

Starts an MLflow server with authentication on 127.0.0.1; writes a new MLflow user's credential
to a JSON file only its owner can read; runs an ordinary MLflow script with the variables below;
stops the server and deletes the file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for _common

from _common import User, mlflow_server, run_job, say


def main() -> int:
    with mlflow_server() as server, tempfile.TemporaryDirectory() as tmp:
        user = User(server, "file")
        path = Path(tmp) / "mlflow-credentials.json"
        path.write_text(json.dumps(user.basic_secret))
        os.chmod(path, 0o400)  # as a Secret volume with defaultMode 0400
        say(f"  wrote the credential to {path} (mode 0400)")
        return run_job(
            "file",
            server,
            user,
            {
                "MLFLOW_SECRETS_AUTH_ENABLE": "file",
                "MLFLOW_FILE_SECRET_PATH": str(path),
            },
        )


if __name__ == "__main__":
    raise SystemExit(main())
