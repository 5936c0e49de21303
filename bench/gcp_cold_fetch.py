"""First fetch through the plugin next to the bare SDK call, for gcp-secret-manager, against the
tests' loopback Secret Manager (HTTPS) with a service-account key (ADC through
GOOGLE_APPLICATION_CREDENTIALS).

- cold: a new process's first request through the plugin — settings, store, ADC lookup, REST
  client creation, the signed JWT, the read, the CRC32C check, parsing — against the bare SDK
  building its client (which does the same ADC lookup) and reading once (goal: ratio <= 1.1);
- cache miss, client reused: the plugin's fetch after its cache was dropped, against one
  ``access_secret_version`` call on an existing client.
Printed, never asserted.
"""

from __future__ import annotations

import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from _common import ROOT

sys.path.insert(0, str(ROOT / "testbed"))
from support.azure_keyvault_fake import make_tls_files
from support.gcp_secret_manager_fake import (
    PROJECT,
    SecretManagerFake,
    make_service_account_key,
)
from support.ports import LOOPBACK, free_port

RUNS = 31
URL = "http://127.0.0.1:5000/api/2.0/mlflow/runs/log-metric"
SECRET = f"projects/{PROJECT}/secrets/bench"


def paired_medians(
    first: Callable[[], object],
    second: Callable[[], object],
    before_first: Callable[[], object] = lambda: None,
    before_second: Callable[[], object] = lambda: None,
) -> tuple[float, float]:
    """Median milliseconds of each action, run alternately so both see the same machine load
    (the benchmark shares a small machine with other work)."""
    samples: tuple[list[float], list[float]] = ([], [])
    for _ in range(RUNS):
        for action, before, out in (
            (first, before_first, samples[0]),
            (second, before_second, samples[1]),
        ):
            before()
            start = time.perf_counter()
            action()
            out.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples[0]), statistics.median(samples[1])


def main() -> int:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake server's access log
    folder = Path(tempfile.mkdtemp(prefix="gcp-bench-"))
    tls = make_tls_files(folder / "tls")
    fake = SecretManagerFake(tls).start()
    try:
        key = make_service_account_key(folder / "keys")
        fake.trust(key)
        fake.add_version("bench", '{"token": "bench-token"}')
        closed = f"{LOOPBACK}:{free_port()}"
        os.environ.update(
            {
                "GOOGLE_APPLICATION_CREDENTIALS": str(key.path),
                "REQUESTS_CA_BUNDLE": str(tls.cert_path),
                "CLOUDSDK_CONFIG": str(folder / "gcloud"),
                "GCE_METADATA_HOST": closed,
                "GCE_METADATA_IP": closed,
                "NO_PROXY": "127.0.0.1,localhost",
                "MLFLOW_SECRETS_AUTH_ENABLE": "gcp-secret-manager",
                "MLFLOW_GCP_ENDPOINT": fake.url,
                "MLFLOW_GCP_SECRET_NAME": SECRET,
                "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
            }
        )
        measure(fake.url)
    finally:
        fake.stop()
    return 0


def measure(endpoint: str) -> None:
    from google.cloud.secretmanager import SecretManagerServiceClient

    from mlflow_secrets_auth import SecretsAuthProviderFactory, runtime

    name = f"{SECRET}/versions/latest"
    clients: list[Any] = []

    def new_client() -> Any:
        client = SecretManagerServiceClient(
            transport="rest", client_options={"api_endpoint": endpoint}
        )
        clients.append(client)
        return client

    def close_clients() -> None:
        while clients:
            clients.pop().transport.close()

    def bare_cold() -> object:
        return new_client().access_secret_version(name=name)

    factory = SecretsAuthProviderFactory()

    def plugin_request() -> None:
        prepared = requests.Request("POST", URL, json={"key": "loss", "value": 0.1}).prepare()
        factory.get_auth()(prepared)  # type: ignore[misc]

    bare_cold()  # imports and first-use caches, for both sides
    plugin_request()
    plugin_cold, sdk_cold = paired_medians(
        plugin_request, bare_cold, before_first=runtime.reset, before_second=close_clients
    )
    plugin_request()
    client = new_client()
    plugin_miss, sdk_call = paired_medians(
        plugin_request,
        lambda: client.access_secret_version(name=name),
        before_first=runtime.CACHE.clear,
    )
    close_clients()
    runtime.reset()

    print(f"median of {RUNS} runs each, alternating (Python {sys.version.split()[0]})")
    print("gcp-secret-manager (loopback Secret Manager over HTTPS + service-account key)")
    print(
        f"  cold: plugin {plugin_cold:7.2f} ms | bare SDK {sdk_cold:7.2f} ms | "
        f"ratio {plugin_cold / sdk_cold:5.2f}"
    )
    print(
        f"  cache miss, client reused: plugin {plugin_miss:6.2f} ms | bare call "
        f"{sdk_call:6.2f} ms | ratio {plugin_miss / sdk_call:5.2f}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
