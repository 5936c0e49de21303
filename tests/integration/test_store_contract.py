"""The contract kit (SPEC §12) against the built-in Vault, AWS and Azure stores, on the real
OpenBao, moto and the loopback Key Vault (GCP, file and exec run it in their own test files).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable

import pytest

from mlflow_secrets_auth.backends.aws import AwsSecretsManagerStore
from mlflow_secrets_auth.backends.azure import AzureKeyVaultStore
from mlflow_secrets_auth.backends.vault import VaultStore
from mlflow_secrets_auth.testing import check_fetch_is_bounded, check_store

from support.azure_keyvault_fake import KeyVaultFake
from support.moto_server import AwsSecret, MotoServer
from support.openbao import OpenBaoServer
from support.ports import LOOPBACK


def test_vault_honours_the_store_contract(
    openbao: OpenBaoServer, vault_env: Callable[..., None], silent_port: int
) -> None:
    token = f"kit-{uuid.uuid4().hex}"
    path = f"contract/{uuid.uuid4().hex[:8]}"
    openbao.write_secret("secret", path, {"token": token})
    vault_env(f"secret/{path}")
    env = dict(os.environ)
    check_store(
        VaultStore,
        env,
        token,
        failing_env={**env, "MLFLOW_VAULT_SECRET_PATH": "secret/contract/does-not-exist"},
        hanging_env={**env, "VAULT_ADDR": f"http://{LOOPBACK}:{silent_port}"},
    )


def test_aws_honours_the_store_contract(
    aws_secret: Callable[[str | bytes], AwsSecret],
    aws_env: MotoServer,
    silent_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    token = f"kit-{uuid.uuid4().hex}"
    aws_secret(json.dumps({"token": token}))
    env = dict(os.environ)
    check_store(
        AwsSecretsManagerStore,
        env,
        token,
        failing_env={**env, "MLFLOW_AWS_SECRET_NAME": "contract/does-not-exist"},
    )
    # boto3 reads its endpoint from the process environment itself (an SDK variable).
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{LOOPBACK}:{silent_port}")
    check_fetch_is_bounded(AwsSecretsManagerStore, dict(os.environ))


def test_azure_honours_the_store_contract(azure_keyvault: KeyVaultFake, silent_port: int) -> None:
    token = f"kit-{uuid.uuid4().hex}"
    azure_keyvault.set_secret("contract", json.dumps({"token": token}))
    env = {**os.environ, "MLFLOW_AZURE_SECRET_NAME": "contract"}
    check_store(
        AzureKeyVaultStore,
        env,
        token,
        failing_env={**env, "MLFLOW_AZURE_SECRET_NAME": "does-not-exist"},
        hanging_env={**env, "MLFLOW_AZURE_KEY_VAULT_URL": f"https://{LOOPBACK}:{silent_port}"},
    )
