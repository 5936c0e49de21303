"""What the local store examples share, so that each `run.py` shows only its store.

Every example:

1. starts an MLflow tracking server with authentication on 127.0.0.1 and creates a user for
   the example (or uses the server named by EXAMPLE_MLFLOW_URL, see below);
2. starts its store's local server and stores that user's credential in it (in `run.py`);
3. runs `examples/log_run.py`, an ordinary MLflow script, with MLFLOW_TRACKING_AUTH and the
   store's variables: the variables it prints are the ones a job sets;
4. asks the server, as its admin, what was recorded and for which user, and checks that no
   secret value appeared in the script's output;
5. stops what it started.

The local servers are the ones the test suite uses (`testbed/support/`). Reusing a running
server instead of starting one (the tests do, so one MLflow start serves every example):

    EXAMPLE_MLFLOW_URL=http://127.0.0.1:PORT
    EXAMPLE_MLFLOW_ADMIN_PASSWORD=...       # the server's `admin` user
    EXAMPLE_MLFLOW_TOKENS_FILE=/path        # its bearer tokens file (mlflow-bearer-server only)

The server must run the basic-auth app with `examples/mlflow-bearer-server/mlflow_bearer_auth.py`
as its authorization_function, as testbed's MlflowAuthServer starts it.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import secrets
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "testbed"))  # the local servers the tests use

from support.mlflow_server import MlflowAuthServer  # noqa: E402
from support.ports import LOOPBACK  # noqa: E402

LOG_RUN = ROOT / "examples" / "log_run.py"
LOCAL_HOSTS = f"{LOOPBACK},localhost"
# Settings from your shell that would change what the example shows; the job gets only the
# variables the example sets (and MLFLOW_SECRETS_LOG_LEVEL, if you set it, to see more).
_NOT_INHERITED = (
    "MLFLOW_",
    "VAULT_",
    "AWS_",
    "AZURE_",
    "IDENTITY_",
    "MSI_",
    "GOOGLE_",
    "GCE_",
    "CLOUDSDK_",
    "NO_GCE_CHECK",
    "ACTIONS_ID_TOKEN_",
    "EXAMPLE_",
    "REQUESTS_CA_BUNDLE",
)
# The loopback stand-ins log each request they serve; the example prints its own account.
logging.getLogger("werkzeug").setLevel(logging.ERROR)
_RUN_LINE = re.compile(r"^run (?P<run_id>[0-9a-f]{32}) in experiment (?P<experiment>\S+)$", re.M)


def say(text: str) -> None:
    print(text, flush=True)


@contextmanager
def mlflow_server() -> Iterator[MlflowAuthServer]:
    """The server named by EXAMPLE_MLFLOW_URL, else a new one stopped on exit."""
    url = os.environ.get("EXAMPLE_MLFLOW_URL")
    if url:
        tokens = os.environ.get("EXAMPLE_MLFLOW_TOKENS_FILE")
        server = MlflowAuthServer.attach(
            url, os.environ["EXAMPLE_MLFLOW_ADMIN_PASSWORD"], Path(tokens) if tokens else None
        )
        say(f"Using the MLflow server at {server.url} (EXAMPLE_MLFLOW_URL)")
        try:
            yield server
        finally:
            server.stop()  # closes the admin session; the server keeps running
        return
    say(
        "Starting an MLflow tracking server with authentication on 127.0.0.1 "
        "(up to a minute on a busy machine) ..."
    )
    with MlflowAuthServer(startup_timeout=180.0) as server:
        say(f"  MLflow: {server.url} (basic-auth app, plus bearer tokens)")
        yield server
    say("Stopped the MLflow server")


class User:
    """An MLflow user created for one example run, with a password of its own."""

    def __init__(self, server: MlflowAuthServer, store: str) -> None:
        self.server = server
        self.name = f"{store}-example-{uuid.uuid4().hex[:6]}"
        self.password = "pw-" + secrets.token_urlsafe(18)
        server.create_user(self.name, self.password)
        say(f"Created MLflow user {self.name!r}")

    @property
    def basic_secret(self) -> dict[str, str]:
        """The secret to store: a username and a password (the plugin sends basic auth)."""
        return {"username": self.name, "password": self.password}

    def secret_forms(self) -> list[str]:
        """The password and the Authorization value built from it: neither may be printed."""
        header = base64.b64encode(f"{self.name}:{self.password}".encode()).decode()
        return [self.password, header]


def run_job(
    label: str,
    server: MlflowAuthServer,
    user: User,
    job_env: Mapping[str, str],
    *,
    local_env: Mapping[str, str] | None = None,
    secret_values: Iterable[str] = (),
    issued_secrets: Callable[[], Iterable[str]] = tuple,
) -> int:
    """Run log_run.py with `job_env` (what a job sets) and `local_env` (only because the store
    is a local stand-in); report what the server recorded; 0 when all is as expected.

    Neither `secret_values` nor what `issued_secrets()` returns after the run (tokens the
    store's login handed out) may appear in the script's output.
    """
    secret_values = [*secret_values, *user.secret_forms()]
    with tempfile.TemporaryDirectory(prefix="mlflow-example-") as home:
        experiment = f"{label}-example-{uuid.uuid4().hex[:8]}"
        job = {
            "MLFLOW_TRACKING_URI": server.url,
            "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
            **job_env,
        }
        local = {
            **(local_env or {}),
            "MLFLOW_EXPERIMENT_NAME": experiment,
            # The plugin's steps, on stderr (set DEBUG in your shell to see every step).
            "MLFLOW_SECRETS_LOG_LEVEL": os.environ.get("MLFLOW_SECRETS_LOG_LEVEL", "INFO"),
            "XDG_CONFIG_HOME": home,  # no profile file of yours changes the example
            "NO_PROXY": LOCAL_HOSTS,
            "no_proxy": LOCAL_HOSTS,
        }
        say("\nThe job's environment (what you set):")
        _show(job, secret_values)
        say("Set only because the store here is a local stand-in, or for this example's output:")
        _show(local, secret_values)
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(_NOT_INHERITED)}
        say(f"\nRunning {LOG_RUN.relative_to(ROOT)}, an unchanged MLflow script ...")
        done = subprocess.run(
            [sys.executable, str(LOG_RUN)],
            env={**inherited, **job, **local},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # the plugin's log lines where they happen
            text=True,
            timeout=300,
        )
    output = done.stdout
    leaked = [v for v in [*secret_values, *issued_secrets()] if v.strip() and v.strip() in output]
    if leaked:
        say(f"FAILED: {len(leaked)} secret value(s) appeared in the script's output")
        return 1
    for line in output.splitlines():
        say(f"  | {line}")
    if done.returncode != 0:
        say(f"FAILED: the script exited with {done.returncode}")
        return 1
    match = _RUN_LINE.search(output)
    if match is None:
        say("FAILED: the script printed no run id")
        return 1
    store = job_env["MLFLOW_SECRETS_AUTH_ENABLE"]
    return _report(label, store, server, user, match["run_id"], match["experiment"])


def _show(env: Mapping[str, str], secret_values: list[str]) -> None:
    for name, value in env.items():
        shown = "(a secret: not shown)" if value in secret_values else value
        say(f"  {name}={shown}")


def _report(
    label: str, store: str, server: MlflowAuthServer, user: User, run_id: str, experiment: str
) -> int:
    """What the server has, asked as its admin: the run, and who created its experiment."""
    run = server.admin_request("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}")["run"]
    data = run["data"]
    artifacts = server.admin_request("GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")
    experiment_id = run["info"]["experiment_id"]
    permission = server.admin_request(
        "GET",
        f"/api/3.0/mlflow/users/permissions/get?username={user.name}"
        f"&resource_type=experiment&resource_id={experiment_id}",
    )["permission"]
    params = ", ".join(sorted(p["key"] for p in data.get("params", [])))
    metrics = ", ".join(sorted(m["key"] for m in data.get("metrics", [])))
    files = ", ".join(sorted(f["path"] for f in artifacts.get("files", [])))
    say(f"\nThe server recorded run {run_id} in experiment {experiment!r}:")
    say(f"  params: {params}; metrics: {metrics}; artifacts: {files}")
    # MLflow grants the creator of an experiment MANAGE on it: the requests came as this user.
    say(f"  user {user.name!r} holds {permission} on that experiment (MLflow grants its creator)")
    if permission != "MANAGE":
        say("FAILED: the run was not logged as the example's user")
        return 1
    say(
        f"OK {label}: every MLflow request was authenticated as {user.name!r} with the credential "
        f"from the {store!r} store; no secret value appeared in the output"
    )
    return 0
