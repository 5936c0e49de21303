"""Cold fetch through the plugin next to the bare SDK call, per backend, on local servers.

- cold: a new process's first request — settings, backend and SDK client creation, login, read,
  parse — against the bare SDK building its client and reading once (goal: ratio <= 1.1);
- cache miss, client reused: the plugin's fetch after its cache was dropped, against one SDK call
  on an existing client;
(the warm per-request cost of each backend is in request_overhead.py, counted in instructions).
Printed, never asserted. Servers: OpenBao, moto, and the loopback Key Vault of the tests.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import requests

from _common import ROOT, environment

sys.path.insert(0, str(ROOT / "testbed"))
from support.azure_keyvault_fake import (
    IdentityEndpointFake,
    KeyVaultFake,
    make_tls_files,
)
from support.moto_server import MotoServer
from support.openbao import OpenBaoServer, openbao_unavailable_reason

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


def measure(
    name: str, env: dict[str, str], bare_cold: Callable[[], object], bare_call: Callable[[], object]
) -> None:
    from mlflow_secrets_auth import SecretsAuthProviderFactory, runtime

    with environment(env):
        factory = SecretsAuthProviderFactory()

        def plugin_request() -> None:
            factory.get_auth()(prepared())  # type: ignore[misc]

        plugin_cold = median_ms(plugin_request, before=runtime.reset)
        sdk_cold = median_ms(bare_cold)
        plugin_request()
        plugin_miss = median_ms(plugin_request, before=runtime.CACHE.clear)
        sdk_call = median_ms(bare_call)

        print(f"{name}")
        print(
            f"  cold: plugin {plugin_cold:7.2f} ms | bare SDK {sdk_cold:7.2f} ms | "
            f"ratio {plugin_cold / sdk_cold:5.2f}"
        )
        print(
            f"  cache miss, client reused: plugin {plugin_miss:6.2f} ms | bare call "
            f"{sdk_call:6.2f} ms | ratio {plugin_miss / sdk_call:5.2f}"
        )


def vault(stack: ExitStack) -> None:
    reason = openbao_unavailable_reason()
    if reason:
        print(f"vault: skipped ({reason})")
        return
    import hvac

    bao = stack.enter_context(OpenBaoServer())
    bao.write_secret("secret", "bench/auth", {"token": "bench-token"})

    def bare_cold() -> object:
        client = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
        return client.secrets.kv.v2.read_secret_version(
            path="bench/auth", mount_point="secret", raise_on_deleted_version=True
        )

    client = hvac.Client(url=bao.addr, token=bao.root_token, timeout=10)
    measure(
        "vault (OpenBao; the plugin also looks up the mount and KV version once per client)",
        {
            "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
            "VAULT_ADDR": bao.addr,
            "VAULT_TOKEN": bao.root_token,
            "MLFLOW_VAULT_SECRET_PATH": "secret/bench/auth",
            "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
        },
        bare_cold,
        lambda: client.secrets.kv.v2.read_secret_version(
            path="bench/auth", mount_point="secret", raise_on_deleted_version=True
        ),
    )


def aws(stack: ExitStack) -> None:
    import boto3

    moto = MotoServer().start()
    stack.callback(moto.stop)
    secret = moto.create_secret(json.dumps({"token": "bench-token"}))
    env = {
        **moto.env(),
        "MLFLOW_SECRETS_AUTH_ENABLE": "aws-secrets-manager",
        "MLFLOW_AWS_SECRET_NAME": secret.name,
        "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
    }
    os.environ.update(moto.env())  # the bare SDK reads the same chain

    def bare_cold() -> object:
        client = boto3.session.Session().client(
            "secretsmanager", region_name=env.get("AWS_DEFAULT_REGION")
        )
        return client.get_secret_value(SecretId=secret.name)

    client = boto3.session.Session().client(
        "secretsmanager", region_name=env.get("AWS_DEFAULT_REGION")
    )
    measure(
        "aws-secrets-manager (moto server)",
        env,
        bare_cold,
        lambda: client.get_secret_value(SecretId=secret.name),
    )


def azure(stack: ExitStack) -> None:
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.secrets import SecretClient
    from azure.keyvault.secrets._shared import http_challenge_cache

    folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
    tls = make_tls_files(folder)
    identity = IdentityEndpointFake().start()
    stack.callback(identity.stop)
    vault = KeyVaultFake(tls, identity).start()
    stack.callback(vault.stop)
    vault.set_secret("bench", json.dumps({"token": "bench-token"}))
    env = {
        **identity.env(),
        "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
        "REQUESTS_CA_BUNDLE": str(tls.cert_path),
        "MLFLOW_SECRETS_AUTH_ENABLE": "azure-key-vault",
        "MLFLOW_AZURE_KEY_VAULT_URL": vault.url,
        "MLFLOW_AZURE_SECRET_NAME": "bench",
        "MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE": "false",
        "MLFLOW_SECRETS_ALLOWED_HOSTS": "127.0.0.1",
    }
    os.environ.update({k: v for k, v in env.items() if not k.startswith("MLFLOW_")})

    def new_client() -> SecretClient:
        return SecretClient(vault.url, DefaultAzureCredential(), verify_challenge_resource=False)

    def bare_cold() -> object:
        http_challenge_cache.remove_challenge_for_url(vault.url)
        return new_client().get_secret("bench")

    client = new_client()
    from mlflow_secrets_auth import runtime

    original_reset = runtime.reset

    def reset_with_challenge() -> None:  # a new process has no cached challenge either
        original_reset()
        http_challenge_cache.remove_challenge_for_url(vault.url)

    runtime.reset = reset_with_challenge  # type: ignore[assignment]
    try:
        measure(
            "azure-key-vault (loopback Key Vault + managed identity)",
            env,
            bare_cold,
            lambda: client.get_secret("bench"),
        )
    finally:
        runtime.reset = original_reset  # type: ignore[assignment]


def main() -> int:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the fake servers' access logs
    print(f"median of {RUNS} runs each (Python {sys.version.split()[0]})")
    for backend in (vault, aws, azure):
        with ExitStack() as stack:
            backend(stack)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
