"""A third-party store as a store author writes one: a JSON "vault" file with named secrets.

It exists to prove the store API from outside the package: discovered by entry point,
enabled by name, listed by ``info``, diagnosed by ``doctor``, and checked by the contract kit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from mlflow_secrets_auth.backends.base import (
    CommonSettings,
    FetchedSecret,
    SecretStore,
    StoreSettings,
    Variable,
)
from mlflow_secrets_auth.errors import BackendError, IncompleteConfigurationError
from mlflow_secrets_auth.values import text


@dataclass(frozen=True, kw_only=True)
class TestStoreSettings(StoreSettings):
    vault_file: str
    secret_name: str

    @property
    def identity(self) -> str:
        return f"teststore:{self.vault_file}:{self.secret_name}"

    def describe(self) -> str:
        return f"secret {self.secret_name} in the test vault file {self.vault_file}"


class TestStore(SecretStore[TestStoreSettings]):
    name = "teststore"
    prefix = "MLFLOW_TESTSTORE"
    variables = (
        Variable("MLFLOW_TESTSTORE_FILE", "vault_file", "a JSON file of name → secret"),
        Variable("MLFLOW_TESTSTORE_SECRET_NAME", "secret_name", "the secret's name in it"),
    )

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> TestStoreSettings:
        missing = [v.name for v in cls.variables if not text(env, v.name)]
        if missing:
            raise IncompleteConfigurationError(cls.name, missing)
        return TestStoreSettings(
            **common.kwargs(),
            vault_file=text(env, "MLFLOW_TESTSTORE_FILE") or "",
            secret_name=text(env, "MLFLOW_TESTSTORE_SECRET_NAME") or "",
        )

    def fetch(self) -> FetchedSecret:
        s = self.settings
        try:
            with open(s.vault_file, encoding="utf-8") as handle:
                secrets = json.load(handle)
        except (OSError, ValueError) as error:
            raise BackendError(
                self.name,
                "connect",
                f"cannot read {s.vault_file} ({type(error).__name__})",
                "MLFLOW_TESTSTORE_FILE",
            ) from None
        if s.secret_name not in secrets:
            raise BackendError(
                self.name,
                "read",
                f"no secret named {s.secret_name}",
                "MLFLOW_TESTSTORE_SECRET_NAME",
            )
        return FetchedSecret(secrets[s.secret_name], location=s.secret_name)


class BadLoaderStore(TestStore):
    """A store whose settings loader breaks its contract (raises something unexpected)."""

    name = "broken-loader"
    prefix = "MLFLOW_BROKEN_LOADER"

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> TestStoreSettings:
        raise KeyError("a bug in the store package")


class BadFetchStore(TestStore):
    """A store whose fetch breaks its contract (raises something other than BackendError)."""

    name = "broken-fetch"
    prefix = "MLFLOW_BROKEN_FETCH"

    def fetch(self) -> FetchedSecret:
        raise ValueError("a bug in the store package that quotes the-secret-payload")
