"""Every example in examples/ runs, or is checked, as a user would meet it, so none can rot.

The local examples run as their READMEs say (`python examples/<name>/run.py`, from the project
root), as subprocesses. They use the session's MLflow server through EXAMPLE_MLFLOW_URL (one MLflow
start serves them all); one of them also starts its own server, as a user's run does. Each must
exit 0, print its outcome, set only variables its store declares (the ones its README lists),
leave a run on the server logged as its user, print no secret even at DEBUG, and stop what it
started.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from mlflow_secrets_auth.backends import load_store
from mlflow_secrets_auth.settings import GENERAL_VARIABLES

from support.mlflow_server import MlflowAuthServer, bearer_auth
from support.openbao import openbao_unavailable_reason

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
STORES = [
    "vault",
    "aws-secrets-manager",
    "azure-key-vault",
    "gcp-secret-manager",
    "file",
    "exec",
]
MLFLOW_CLIENT_VARIABLES = {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_AUTH"}
#: What the examples set for their own output and isolation, never for the store.
EXAMPLE_ONLY = {"MLFLOW_EXPERIMENT_NAME", "XDG_CONFIG_HOME", "NO_PROXY", "no_proxy"}
_RUN = re.compile(r"^\s*\| run (?P<run_id>[0-9a-f]{32}) in experiment (?P<experiment>\S+)$", re.M)
_URL = re.compile(r"https?://127\.0\.0\.1:\d+")


def run_example(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python examples/<name>/run.py` from the project root, with `env` added."""
    full = {**os.environ, "MLFLOW_SECRETS_LOG_LEVEL": "DEBUG", **env}
    if full.get("PYTHONPATH"):  # keep relative entries (`src`) meaning the same from ROOT
        entries = full["PYTHONPATH"].split(os.pathsep)
        full["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
    return subprocess.run(
        [sys.executable, f"examples/{name}/run.py"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=240,
    )


def reuse(server: MlflowAuthServer) -> dict[str, str]:
    """The variables that make an example use `server` instead of starting its own."""
    return {
        "EXAMPLE_MLFLOW_URL": server.url,
        "EXAMPLE_MLFLOW_ADMIN_PASSWORD": server.admin_password,
        "EXAMPLE_MLFLOW_TOKENS_FILE": str(server.tokens_file),
    }


def printed_block(stdout: str, heading: str) -> dict[str, str]:
    """The `NAME=value` lines an example printed under `heading`."""
    block = stdout.split(heading, 1)[1].lstrip("\n")
    found: dict[str, str] = {}
    for line in block.splitlines():
        match = re.fullmatch(r"  ([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if match is None:
            break
        found[match[1]] = match[2]
    return found


def job_block(stdout: str) -> dict[str, str]:
    return printed_block(stdout, "The job's environment (what you set):")


def local_block(stdout: str) -> dict[str, str]:
    return printed_block(stdout, "or for this example's output:")


def readme_variables(name: str) -> set[str]:
    """The variables the README's "What the job sets" section exports."""
    text = (EXAMPLES / name / "README.md").read_text()
    assert "\n## What the job sets\n" in text, f"examples/{name}/README.md"
    section = text.split("\n## What the job sets\n", 1)[1].split("\n## ", 1)[0]
    exports = set(re.findall(r"^export ([A-Z_][A-Z0-9_]*)=", section, re.M))
    assert exports, f"examples/{name}/README.md lists no variables"
    return exports


def assert_run_logged(server: MlflowAuthServer, stdout: str) -> None:
    """The server has the run the example reported, created by the example's own user."""
    match = _RUN.search(stdout)
    assert match is not None, stdout[-3000:]
    run = server.admin_request("GET", f"/api/2.0/mlflow/runs/get?run_id={match['run_id']}")
    metrics = run["run"]["data"]["metrics"]
    assert [(m["key"], m["value"]) for m in metrics] == [("loss", 0.3)]
    user = re.search(r"OK \S+: every MLflow request was authenticated as '([^']+)'", stdout)
    assert user is not None
    experiment_id = run["run"]["info"]["experiment_id"]
    permission = server.admin_request(
        "GET",
        f"/api/3.0/mlflow/users/permissions/get?username={user[1]}"
        f"&resource_type=experiment&resource_id={experiment_id}",
    )
    assert permission["permission"] == "MANAGE"  # the experiment's creator: the example's user


def assert_all_stopped(stdout: str, keep: str | None = None) -> None:
    """No server an example printed the address of still accepts connections."""
    for url in set(_URL.findall(stdout)) - {keep}:
        parts = urlsplit(url)
        with socket.socket() as sock:
            sock.settimeout(2.0)
            assert sock.connect_ex((parts.hostname or "", parts.port or 0)) != 0, url


@pytest.mark.parametrize("store", STORES)
def test_store_example_runs_with_the_stores_declared_variables(
    store: str, mlflow_server: MlflowAuthServer
) -> None:
    if store == "vault" and (reason := openbao_unavailable_reason()):
        pytest.skip(reason)

    done = run_example(store, reuse(mlflow_server))

    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert f"OK {store}: every MLflow request was authenticated as " in done.stdout
    assert f"with the credential from the '{store}' store; no secret value appeared" in done.stdout
    assert "Authentication successful (provider=" in done.stdout  # the plugin's own account
    assert "DEBUG: Secret read (provider=" in done.stdout  # the leak check saw every step
    job, local = job_block(done.stdout), local_block(done.stdout)
    declared = {v.name for v in load_store(store).variables}
    assert job["MLFLOW_SECRETS_AUTH_ENABLE"] == store
    assert job["MLFLOW_TRACKING_AUTH"] == "mlflow_secrets_auth"
    assert set(job) - MLFLOW_CLIENT_VARIABLES - set(GENERAL_VARIABLES) <= declared
    assert set(local) - EXAMPLE_ONLY - set(GENERAL_VARIABLES) <= declared
    assert set(job) == readme_variables(store)  # the README shows what the job sets
    for name in ("VAULT_TOKEN", "IDENTITY_HEADER"):
        if name in job or name in local:
            assert {**job, **local}[name] == "(a secret: not shown)"
    assert_run_logged(mlflow_server, done.stdout)
    assert mlflow_server.admin_password not in done.stdout + done.stderr
    assert_all_stopped(done.stdout, keep=mlflow_server.url)


def test_an_example_starts_and_stops_its_own_mlflow_server() -> None:
    done = run_example("file", {})

    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "Starting an MLflow tracking server with authentication" in done.stdout
    assert "OK file: every MLflow request was authenticated as " in done.stdout
    assert done.stdout.rstrip().endswith("Stopped the MLflow server")
    assert_all_stopped(done.stdout)


# --- the bearer-token MLflow server ------------------------------------------------------------


def test_bearer_server_example_authenticates_with_a_token_and_revokes_it(
    mlflow_server: MlflowAuthServer,
) -> None:
    done = run_example("mlflow-bearer-server", reuse(mlflow_server))

    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "Authentication successful (provider=file, auth_mode=bearer)" in done.stdout
    assert "OK mlflow-bearer-server: every MLflow request was authenticated as " in done.stdout
    assert re.search(r"Revoked 1 token\(s\) of '[^']+': it now gets HTTP 401", done.stdout)
    assert_run_logged(mlflow_server, done.stdout)
    assert set(job_block(done.stdout)) == readme_variables("mlflow-bearer-server")


def test_bearer_module_issues_tokens_whose_digest_alone_is_stored(tmp_path: Path) -> None:
    module = EXAMPLES / "mlflow-bearer-server" / "mlflow_bearer_auth.py"
    tokens = tmp_path / "tokens.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(module), *args, "--tokens-file", str(tokens)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    first, second = cli("issue", "alice"), cli("issue", "bob")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    alice, bob = first.stdout.strip(), second.stdout.strip()
    assert len(alice) >= 40 and alice != bob
    stored = tokens.read_text()
    assert alice not in stored and bob not in stored
    digest = bearer_auth().token_digest
    assert bearer_auth().read_digests(str(tokens)) == {digest(alice): "alice", digest(bob): "bob"}

    revoked = cli("revoke", "alice")

    assert revoked.returncode == 0 and "revoked 1 token(s) of alice" in revoked.stderr
    assert bearer_auth().read_digests(str(tokens)) == {digest(bob): "bob"}
