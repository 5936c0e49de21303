"""AWS Secrets Manager: the MLflow credential in a secret, read through boto3's own credential
chain (a role in AWS; keys only here, for the local stand-in).

    python examples/aws-secrets-manager/run.py

Starts moto's AWS server (in this process) and an MLflow server with authentication, on
127.0.0.1; stores a new MLflow user's credential as the secret mlflow/training; runs an ordinary
MLflow script with the variables below; stops both.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/, for _common

from _common import User, mlflow_server, run_job, say
from support.moto_server import (
    DUMMY_ACCESS_KEY_ID,
    DUMMY_SECRET_ACCESS_KEY,
    REGION,
    MotoServer,
)

SECRET_NAME = "mlflow/training"


def main() -> int:
    with mlflow_server() as server:
        user = User(server, "aws")
        say("Starting moto's AWS server on 127.0.0.1 ...")
        aws = MotoServer().start()
        try:
            aws.create_secret(json.dumps(user.basic_secret), name=SECRET_NAME)
            say(f"  AWS endpoint: {aws.url}; the credential is the secret {SECRET_NAME!r}")
            return run_job(
                "aws-secrets-manager",
                server,
                user,
                {
                    "MLFLOW_SECRETS_AUTH_ENABLE": "aws-secrets-manager",
                    "MLFLOW_AWS_SECRET_NAME": SECRET_NAME,
                    "AWS_REGION": REGION,
                },
                local_env={
                    # In AWS the role of the instance, task or pod (IRSA) provides credentials,
                    # and boto3 finds it: none of these three is set there.
                    "AWS_ENDPOINT_URL_SECRETS_MANAGER": aws.url,
                    "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
                    "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
                },
            )
        finally:
            aws.stop()
            say("Stopped moto")


if __name__ == "__main__":
    raise SystemExit(main())
