"""End-to-end demo: MLflow credentials kept in Vault, used by unchanged MLflow code.

1. starts a real OpenBao (Vault-compatible) dev server on 127.0.0.1;
2. starts a real MLflow tracking server with authentication (`--app-name basic-auth`) there too;
3. creates an MLflow user and stores its username and password in Vault at secret/mlflow/auth;
4. runs examples/train.py, an ordinary MLflow script, with MLFLOW_TRACKING_AUTH=mlflow_secrets_auth;
5. makes two calls from this process: the first reads Vault, the second uses the cached credential;
6. rotates the password on the server and in Vault, and shows the next call recover through one
   401 replay, without a restart;
7. stops both servers.

Progress while a server starts goes to stderr; everything else to stdout. What each call did
("read from Vault", "(cached)", "401 and replay") is read from the plugin's cache counters after
the call, never assumed. MLflow can take most of a minute to start on a busy machine:
`--mlflow-start-timeout` (or DEMO_MLFLOW_START_TIMEOUT) sets how long to wait, 180 s by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TypeVar

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the same local-server helpers the tests use

from support.mlflow_server import MlflowAuthServer  # noqa: E402
from support.openbao import OpenBaoServer, openbao_unavailable_reason  # noqa: E402
from support.ports import ManagedServer, ServerStartError  # noqa: E402

SECRET_PATH = "secret/mlflow/auth"
USER = "trainer"
EXPERIMENT = "demo-experiment"
START_TIMEOUT_VARIABLE = "DEMO_MLFLOW_START_TIMEOUT"
DEFAULT_MLFLOW_START_TIMEOUT = 180.0
OPENBAO_START_TIMEOUT = 60.0
_PROXY_VARIABLES = ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")

T = TypeVar("T")
S = TypeVar("S", bound=ManagedServer)


class Progress:
    """One line on ``stream`` while something slow runs: what, then how long it has taken.

    On a terminal the line ticks in place every second; elsewhere (a log, a pipe) a mark is
    appended every five seconds, so the output stays one readable line either way. It ends
    with "ready in N s" or "failed after N s".
    """

    def __init__(self, label: str, stream: IO[str], *, interval: float | None = None) -> None:
        self.label = label
        self.stream = stream
        self.tty = stream.isatty()
        self.interval = interval if interval is not None else (1.0 if self.tty else 5.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="demo-progress", daemon=True)
        self._started = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def __enter__(self) -> Progress:
        self._started = time.monotonic()
        self._write(f"  {self.label}…")
        self._thread.start()
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        outcome = "ready in" if exc_type is None else "failed after"
        if self.tty:
            self._write(f"\r\x1b[K  {self.label}… {outcome} {self.elapsed():.1f} s\n")
        else:
            self._write(f" {outcome} {self.elapsed():.1f} s\n")

    def _tick(self) -> None:
        while not self._stop.wait(self.interval):
            seconds = self.elapsed()
            if self.tty:
                self._write(f"\r\x1b[K  {self.label}… {seconds:.0f} s")
            else:
                self._write(f" {seconds:.0f} s…")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def step(number: int, text: str) -> None:
    print(f"\n[{number}] {text}", flush=True)


def start(server: S, label: str) -> S:
    """Start ``server`` with a progress line on stderr."""
    sys.stdout.flush()
    with Progress(label, sys.stderr):
        server.start()
    return server


def observe(label: str, call: Callable[[], T]) -> tuple[T, str]:
    """Run one MLflow call and say, from the plugin's cache counters, how its credential came."""
    from mlflow_secrets_auth.runtime import CACHE

    before = dataclasses.replace(CACHE.stats)
    result = call()
    after = CACHE.stats
    reads = after.fetches - before.fetches
    if after.invalidations > before.invalidations:
        how = (
            "the server answered 401, the plugin dropped the rejected credential, read the new "
            f"one from Vault ({reads} read) and replayed the request"
        )
    elif reads:
        how = f"credential read from Vault ({reads} read)"
    elif after.hits > before.hits:
        how = "credential from this process's cache, no Vault read (cached)"
    else:
        how = "no credential was needed"
    print(f"  {label}: {how}", flush=True)
    return result, how


def run_training(env: dict[str, str]) -> None:
    """Run examples/train.py in its own process, its output (plugin log lines too) indented."""
    child_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1", "MLFLOW_SECRETS_LOG_LEVEL": "INFO"}
    with subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "train.py")],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as child:
        assert child.stdout is not None
        for line in child.stdout:
            print(f"  | {line.rstrip()}", flush=True)
    if child.returncode != 0:
        raise SystemExit(f"examples/train.py failed with exit code {child.returncode}")


def job_environment(vault: OpenBaoServer, server: MlflowAuthServer) -> dict[str, str]:
    env = {
        "MLFLOW_TRACKING_URI": server.url,
        "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
        "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
        "VAULT_ADDR": vault.addr,
        "VAULT_TOKEN": vault.root_token,
        "MLFLOW_VAULT_SECRET_PATH": SECRET_PATH,
    }
    if any(os.environ.get(name) for name in _PROXY_VARIABLES):
        # Credentials go over plain http only to loopback reached without a proxy.
        exempt = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
        env["NO_PROXY"] = ",".join(filter(None, [exempt, "127.0.0.1", "localhost"]))
    return env


def demo(mlflow_start_timeout: float) -> int:
    step(1, "Starting OpenBao (the Vault API) on 127.0.0.1")
    try:
        vault = start(OpenBaoServer(startup_timeout=OPENBAO_START_TIMEOUT), "starting OpenBao")
    except ServerStartError as error:
        print(f"OpenBao did not start: {error}", file=sys.stderr)
        return 1
    try:
        print(f"  Vault:  {vault.addr}", flush=True)
        code = with_vault(vault, mlflow_start_timeout)
    finally:
        vault.stop()
        print("  OpenBao stopped", flush=True)
    if code == 0:
        print("\nDone: every MLflow call was authenticated with the credential kept in Vault.")
    return code


def with_vault(vault: OpenBaoServer, mlflow_start_timeout: float) -> int:
    step(2, "Starting an MLflow tracking server with authentication (basic-auth app)")
    label = "starting MLflow (this takes up to a minute on a busy machine)"
    try:
        server = start(MlflowAuthServer(startup_timeout=mlflow_start_timeout), label)
    except ServerStartError as error:
        print(
            f"MLflow did not start: {error}\nIf the machine is only slow, wait longer: "
            f"{START_TIMEOUT_VARIABLE}=600 make demo (now {mlflow_start_timeout:.0f} s).",
            file=sys.stderr,
        )
        return 1
    try:
        print(f"  MLflow: {server.url}", flush=True)
        code = with_servers(vault, server)
        step(7, "Stopping both servers")
    finally:
        stopping = time.monotonic()
        server.stop()
        print(f"  MLflow stopped in {time.monotonic() - stopping:.1f} s", flush=True)
    return code


def with_servers(vault: OpenBaoServer, server: MlflowAuthServer) -> int:
    step(3, f"Creating MLflow user {USER!r} and storing its password in Vault at {SECRET_PATH}")
    password = "pw-" + secrets.token_urlsafe(16)
    server.create_user(USER, password)
    vault.write_secret("secret", "mlflow/auth", {"username": USER, "password": password})
    env = job_environment(vault, server)
    os.environ.update(env)
    print("  environment for the job (auth mode auto: a username/password secret → basic):")
    for name, value in env.items():
        print(f"    {name}={'(set)' if name == 'VAULT_TOKEN' else value}")

    step(4, "Running examples/train.py, an unchanged MLflow script, through the plugin")
    print("  (MLFLOW_SECRETS_LOG_LEVEL=INFO shows the plugin's lines among MLflow's)", flush=True)
    run_training(env)

    step(5, "Two calls from this process: the first reads Vault, the next uses the cache")
    import mlflow
    from mlflow import MlflowClient

    logger = logging.getLogger("mlflow_secrets_auth")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  plugin: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        client = MlflowClient()
        experiment, _ = observe(
            f"get_experiment_by_name({EXPERIMENT!r})",
            lambda: client.get_experiment_by_name(EXPERIMENT),
        )
        if experiment is None:
            print(f"  the experiment {EXPERIMENT!r} was not found", file=sys.stderr)
            return 1
        runs, _ = observe("search_runs", lambda: client.search_runs([experiment.experiment_id]))
        print(f"  experiment {experiment.experiment_id} holds {len(runs)} run(s)", flush=True)

        step(6, "Rotating the password on the MLflow server and in Vault, this process running")
        new_password = "pw-" + secrets.token_urlsafe(16)
        server.update_password(USER, new_password)
        vault.write_secret("secret", "mlflow/auth", {"username": USER, "password": new_password})
        print("  password changed on the server and in Vault", flush=True)

        def log_after_rotation() -> str:
            with mlflow.start_run(
                experiment_id=experiment.experiment_id, run_name="after-rotation"
            ) as run:
                mlflow.log_metric("recovered", 1.0)
            return str(run.info.run_id)

        run_id, _ = observe("start_run after the rotation", log_after_rotation)
        print(f"  run {run_id} logged without restarting anything", flush=True)
    finally:
        logger.removeHandler(handler)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--mlflow-start-timeout",
        type=float,
        default=float(os.environ.get(START_TIMEOUT_VARIABLE) or DEFAULT_MLFLOW_START_TIMEOUT),
        metavar="SECONDS",
        help=f"how long to wait for the MLflow server to start (default 180, or "
        f"{START_TIMEOUT_VARIABLE})",
    )
    options = parser.parse_args(argv)
    reason = openbao_unavailable_reason()
    if reason:
        print(f"The demo needs the OpenBao server binary: {reason}", file=sys.stderr)
        return 1
    return demo(options.mlflow_start_timeout)


if __name__ == "__main__":
    raise SystemExit(main())
