"""The README documents every variable the package reads, and the CLI commands it offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_secrets_auth.settings import AWS_SDK_VARIABLES, AZURE_SDK_VARIABLES, KNOWN_VARIABLES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
# The SDKs read these themselves; the README points to each SDK's own chain instead.
SDK_OWNED = set(AWS_SDK_VARIABLES) | set(AZURE_SDK_VARIABLES)


@pytest.mark.parametrize("name", sorted(set(KNOWN_VARIABLES) - SDK_OWNED))
def test_variable_is_documented(name: str) -> None:
    short = {
        "MLFLOW_SECRETS_AUTH_ENABLE_AWS_SECRETS_MANAGER": "_AWS_SECRETS_MANAGER",
        "MLFLOW_SECRETS_AUTH_ENABLE_AZURE_KEY_VAULT": "_AZURE_KEY_VAULT",
    }
    prefix_forms = {
        name.replace(backend, "{VAULT,AWS,AZURE}")
        for backend in ("VAULT", "AWS", "AZURE")
        if name.startswith(f"MLFLOW_{backend}_") and name.endswith(("_AUTH_MODE", "_TTL_SEC"))
    }
    assert any(form in README for form in {name, short.get(name, name), *prefix_forms}), name


@pytest.mark.parametrize("command", ["info", "doctor", "doctor --dry-run", "cache clear"])
def test_cli_command_is_documented(command: str) -> None:
    assert f"mlflow-secrets-auth {command}" in README
