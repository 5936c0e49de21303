"""First fetch through the plugin next to the bare read or command, for the file and exec stores.

- cold: a new process's first request — settings, store, read or command, parse — against the
  bare ``open().read()`` or ``subprocess.run`` (goal: ratio <= 1.1);
- cache miss, store reused: the plugin's fetch after its cache was dropped (for the file store
  that is one ``stat`` of an unchanged file) against the same bare call;
- store only: a new store's first ``fetch()``, called directly, without the plugin around it.

Each figure is a median of runs alternating with the bare call. Printed, never asserted. Two
commands for exec: coreutils' ``printf`` (the cheapest command there is, so the store's own
overhead shows) and a Python script (what a real CLI costs at least).
"""

from __future__ import annotations

import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from _common import ROOT, environment

sys.path.insert(0, str(ROOT / "testbed"))
from support.secret_files import SecretVolume

RUNS = 41
URL = "http://127.0.0.1:5000/api/2.0/mlflow/runs/log-metric"


def paired_ms(
    ours: Callable[[], object], bare: Callable[[], object], before: Callable[[], object]
) -> tuple[float, float]:
    """Medians of ``ours`` (after ``before``) and ``bare``, sampled alternately, so that the
    load of a shared machine drifts over both alike."""
    mine, theirs = [], []
    for _ in range(RUNS):
        before()
        start = time.perf_counter()
        ours()
        mine.append((time.perf_counter() - start) * 1000)
        start = time.perf_counter()
        bare()
        theirs.append((time.perf_counter() - start) * 1000)
    return statistics.median(mine), statistics.median(theirs)


def prepared() -> requests.PreparedRequest:
    return requests.Request("POST", URL, json={"key": "loss", "value": 0.1}).prepare()


def line(label: str, figures: tuple[float, float], who: str = "plugin") -> str:
    ours, bare = figures
    return f"  {label}: {who} {ours:7.3f} ms | bare {bare:7.3f} ms | ratio {ours / bare:5.2f}"


def measure(name: str, store_class: type, env: dict[str, str], bare: Callable[[], object]) -> None:
    from mlflow_secrets_auth import SecretsAuthProviderFactory, runtime
    from mlflow_secrets_auth.backends.base import CommonSettings

    print(name)
    common = CommonSettings(store_class.name, "auto", 300.0, 10.0)
    settings = store_class.load_settings(env, common)
    # A new store's first fetch, without the plugin's settings, cache and parsing around it.
    store_only = paired_ms(lambda: store_class(settings).fetch(), bare, lambda: None)
    print(line("store only", store_only, who="store"), flush=True)
    with environment(env):
        factory = SecretsAuthProviderFactory()

        def plugin_request() -> None:
            factory.get_auth()(prepared())  # type: ignore[misc]

        print(line("cold", paired_ms(plugin_request, bare, runtime.reset)))
        plugin_request()
        miss = paired_ms(plugin_request, bare, runtime.CACHE.clear)
        print(line("cache miss, store reused", miss))


def file_store(folder: Path) -> None:
    from mlflow_secrets_auth.backends.file import FileStore

    volume = SecretVolume(folder / "volume", mode=0o400)
    volume.write({"credentials": json.dumps({"token": "bench-token"}) + "\n"})
    path = str(volume.path("credentials"))
    env = {
        "MLFLOW_SECRETS_AUTH_ENABLE": "file",
        "MLFLOW_FILE_SECRET_PATH": path,
        "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
    }

    def bare() -> object:
        with open(path, encoding="utf-8") as handle:
            return json.loads(handle.read())

    measure(
        "file (a Kubernetes-style Secret volume; bare: open, read, json.loads)",
        FileStore,
        env,
        bare,
    )


def exec_store(folder: Path) -> None:
    from mlflow_secrets_auth.backends.exec import ExecStore

    script = folder / "credential.py"
    script.write_text('import json\nprint(json.dumps({"token": "bench-token"}))\n')
    commands = {
        "exec (printf: the cheapest command)": ["printf", "%s", "bench-token"],
        "exec (a Python script printing JSON)": [sys.executable, "-S", str(script)],
    }
    for name, argv in commands.items():
        env = {
            "MLFLOW_SECRETS_AUTH_ENABLE": "exec",
            "MLFLOW_EXEC_COMMAND": shlex.join(argv),
            "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
        }

        def bare(argv: list[str] = argv) -> object:
            done = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, check=True)
            return done.stdout

        measure(f"{name}; bare: subprocess.run", ExecStore, env, bare)


def main() -> int:
    print(f"median of {RUNS} runs each (Python {sys.version.split()[0]})")
    with tempfile.TemporaryDirectory() as folder:
        file_store(Path(folder))
        exec_store(Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
