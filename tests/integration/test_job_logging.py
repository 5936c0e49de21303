"""`MLFLOW_SECRETS_LOG_LEVEL=DEBUG python train.py` shows the plugin's steps on stderr, and a
script that configures its own logging gets them where it sends them (SPEC §10).

A real training job in a subprocess: real OpenBao, the real authenticated MLflow server, MLflow
loading the plugin through its entry point, and nothing but the variable to turn logging on.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from support.mlflow_server import MlflowAuthServer
from support.openbao import OpenBaoServer

pytestmark = pytest.mark.integration

JOB = textwrap.dedent(
    """
    import logging, sys
    if sys.argv[1] != "-":  # the script's own logging, as many training scripts have
        logging.basicConfig(filename=sys.argv[1], level=logging.INFO)
    import mlflow
    mlflow.set_experiment(sys.argv[2])
    with mlflow.start_run():
        mlflow.log_metric("loss", 0.5)
    print("job done")
    """
)
STEPS = (
    "DEBUG: Fetching secret (provider=vault,",
    "INFO: Secret fetched successfully (provider=vault, cache_hit=false, kind=basic,",
    "INFO: Authentication successful (provider=vault, auth_mode=basic)",
)


@pytest.fixture
def job(
    openbao: OpenBaoServer, mlflow_server: MlflowAuthServer, tmp_path: Path
) -> tuple[dict[str, str], list[str]]:
    """The environment of a job authenticated through the plugin, and the secrets to look for."""
    username, password = f"job-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    mlflow_server.create_user(username, password)
    path = f"job-logging-{uuid.uuid4().hex[:8]}"
    openbao.write_secret("secret", path, {"username": username, "password": password})
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
        "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": openbao.root_token,
        "MLFLOW_VAULT_SECRET_PATH": f"secret/{path}",
        "MLFLOW_SECRETS_LOG_LEVEL": "DEBUG",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    basic = base64.b64encode(f"{username}:{password}".encode()).decode()
    return env, [password, basic, openbao.root_token]


def run_job(env: dict[str, str], log_file: str) -> subprocess.CompletedProcess[str]:
    experiment = f"job-logging-{uuid.uuid4().hex[:8]}"
    done = subprocess.run(
        [sys.executable, "-c", JOB, log_file, experiment],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().endswith("job done")
    return done


def test_the_variable_alone_shows_fetch_and_authentication_on_stderr(
    job: tuple[dict[str, str], list[str]],
) -> None:
    env, secrets = job
    done = run_job(env, "-")
    for step in STEPS:
        assert any(line.startswith(step) for line in done.stderr.splitlines()), step
    assert done.stderr.count("Secret fetched successfully") == 1  # one fetch, shown once
    for secret in secrets:
        assert secret not in done.stderr and secret not in done.stdout


def test_the_scripts_own_logging_gets_the_records_and_stderr_stays_clean(
    job: tuple[dict[str, str], list[str]], tmp_path: Path
) -> None:
    env, secrets = job
    log_file = tmp_path / "train.log"
    done = run_job(env, str(log_file))
    assert "provider=vault" not in done.stderr
    assert "mlflow_secrets_auth" not in done.stderr
    log = log_file.read_text()
    assert "DEBUG:mlflow_secrets_auth.source:Fetching secret (provider=vault," in log
    assert log.count("INFO:mlflow_secrets_auth.source:Secret fetched successfully") == 1
    assert "INFO:mlflow_secrets_auth.auth:Authentication successful (provider=vault" in log
    for secret in secrets:
        assert secret not in log and secret not in done.stderr
