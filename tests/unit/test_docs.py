"""The README documents every variable the package reads, and the CLI commands it offers."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_secrets_auth.backends import BUILTIN_ORDER, load_store
from mlflow_secrets_auth.settings import known_variables

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
_LOADED = [load_store(name) for name in BUILTIN_ORDER]
# The SDKs read these themselves; the README points to each SDK's own chain instead.
SDK_OWNED = {v.name for store in _LOADED for v in store.variables if v.sdk}


@pytest.mark.parametrize("name", sorted(set(known_variables(BUILTIN_ORDER)) - SDK_OWNED))
def test_variable_is_documented(name: str) -> None:
    # The README's tables abbreviate families: the enable flags after the first, and the
    # per-store <PREFIX>_AUTH_MODE/_TTL_SEC pairs.
    short = name.removeprefix("MLFLOW_SECRETS_AUTH_ENABLE") if "ENABLE_" in name else name
    stores = ("VAULT", "AWS", "AZURE", "GCP", "FILE", "EXEC")
    prefix_forms = {
        name.replace(store, "{" + ",".join(stores) + "}", 1)
        for store in stores
        if name.startswith(f"MLFLOW_{store}_") and name.endswith(("_AUTH_MODE", "_TTL_SEC"))
    }
    assert any(form in README for form in {name, f"`{short}`", *prefix_forms}), name


@pytest.mark.parametrize("command", ["info", "doctor", "doctor --dry-run", "cache clear"])
def test_cli_command_is_documented(command: str) -> None:
    assert f"mlflow-secrets-auth {command}" in README
