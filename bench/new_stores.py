"""First fetch through the plugin next to the bare read or command, for the file and exec stores.

- cold: a new process's first request — settings, store, read or command, parse — against the
  bare ``open().read()`` or ``subprocess.run`` (goal: ratio <= 1.1);
- cache miss, store reused: the plugin's fetch after its cache was dropped (for the file store
  that is one ``stat`` of an unchanged file) against the same bare call;
- store only: a new store's first ``fetch()``, called directly, without the plugin around it.
Printed, never asserted. Two commands for exec: coreutils' ``printf`` (the cheapest command there
is, so the store's own overhead shows) and a Python script (what a real CLI costs at least).
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import requests

from _common import ROOT

sys.path.insert(0, str(ROOT / "tests"))
from support.secret_files import SecretVolume

RUNS = 31
URL = "http://127.0.0.1:5000/api/2.0/mlflow/runs/log-metric"


def median_ms(action: Callable[[], object], before: Callable[[], object] = lambda: None) -> float:
    samples = []
    for _ in range(RUNS):
        before()
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def prepared() -> requests.PreparedRequest:
    return requests.Request("POST", URL, json={"key": "loss", "value": 0.1}).prepare()


def line(label: str, ours: float, bare: float, who: str = "plugin") -> str:
    return f"  {label}: {who} {ours:7.3f} ms | bare {bare:7.3f} ms | ratio {ours / bare:5.2f}"


def measure(name: str, env: dict[str, str], bare: Callable[[], object], store_fetch: float) -> None:
    from mlflow_secrets_auth import SecretsAuthProviderFactory, runtime

    bare_ms = median_ms(bare)
    print(name)
    print(line("store only", store_fetch, bare_ms, who="store"), flush=True)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        factory = SecretsAuthProviderFactory()

        def plugin_request() -> None:
            factory.get_auth()(prepared())  # type: ignore[misc]

        plugin_cold = median_ms(plugin_request, before=runtime.reset)
        plugin_request()
        plugin_miss = median_ms(plugin_request, before=runtime.CACHE.clear)
        print(line("cold", plugin_cold, bare_ms))
        print(line("cache miss, store reused", plugin_miss, bare_ms))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        runtime.reset()


def store_fetch_ms(store_class: type, env: dict[str, str]) -> float:
    """A new store's first ``fetch()``, the plugin's settings, cache and parsing left out."""
    from mlflow_secrets_auth.backends.base import CommonSettings

    common = CommonSettings(store_class.name, "auto", 300.0, 10.0)
    settings = store_class.load_settings(env, common)
    return median_ms(lambda: store_class(settings).fetch())


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
        env,
        bare,
        store_fetch_ms(FileStore, env),
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

        measure(f"{name}; bare: subprocess.run", env, bare, store_fetch_ms(ExecStore, env))


def main() -> int:
    print(f"median of {RUNS} runs each (Python {sys.version.split()[0]})")
    with tempfile.TemporaryDirectory() as folder:
        file_store(Path(folder))
        exec_store(Path(folder))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
