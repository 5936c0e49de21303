"""Step 1: can the plugin's configuration be read, and which backend does it choose?

Every later credential step needs the settings and the backend built here.
"""

from __future__ import annotations

from ..backends import load_store
from ..errors import ConfigurationError
from ..info import backend_states, install_command, sdk_installed
from ..settings import load_general, load_settings
from .describe import _describe
from .model import Check, _Run

ENABLE_FIX = (
    "set MLFLOW_SECRETS_AUTH_ENABLE=vault (or aws-secrets-manager, azure-key-vault) and that "
    "backend's variables, e.g. VAULT_ADDR, VAULT_TOKEN and MLFLOW_VAULT_SECRET_PATH"
)


def _configuration(run: _Run) -> None:
    def fail(detail: str, fix: str, blocked: str) -> None:
        run.add(Check("configuration", "Configuration", "failed", detail, fix))
        run.blocked = blocked

    try:
        general = run.general = load_general(run.env)
    except ConfigurationError as error:
        variable = error.variable or "the variable named above"
        return fail(str(error), f"correct {variable}", "the configuration could not be read")
    if not general.enabled:
        return fail(
            "no secrets backend is enabled: the plugin is inactive and MLflow requests carry no "
            "plugin credentials",
            ENABLE_FIX,
            "no backend is enabled",
        )
    states = backend_states(run.env, general)
    skipped = [s for s in states if s.state == "skipped"]
    # Missing variables and a missing SDK together, so that one round of fixes is enough.
    skipped_text = "; ".join(f"{s.name} skipped: {_lacks(s.name, s.missing)}" for s in skipped)
    try:
        settings = load_settings(run.env)
    except ConfigurationError as error:
        invalid = [s for s in states if s.state == "invalid"]
        if invalid:
            return fail(
                invalid[0].error or str(error),
                f"correct {error.variable or 'the variable named above'}",
                "the configuration is invalid",
            )
        fix = "; or ".join(f"{_remedy(s.name, s.missing)} ({s.name})" for s in skipped)
        return fail(
            f"no enabled backend is fully configured: {skipped_text}",
            fix or f"correct {error.variable}",
            "no enabled backend is fully configured",
        )
    chosen = settings.backend
    if chosen is None:  # enabled but nothing chosen cannot happen; be explicit anyway
        return fail("no backend was chosen", ENABLE_FIX, "no backend was chosen")

    from ..backends import create_store

    try:
        backend = create_store(chosen)
    except ConfigurationError as error:  # the SDK is not installed
        also = f"; {skipped_text}" if skipped_text else ""
        fix = str(error).rpartition(": ")[2]
        return fail(f"{error}{also}", fix, "the backend's SDK is missing")
    run.settings, run.backend = settings, backend
    detail = f"{chosen.backend_name} chosen: {_describe(chosen, run.env)}"
    if skipped:
        enable = "remove them from MLFLOW_SECRETS_AUTH_ENABLE"
        fix = "; ".join(f"{_remedy(s.name, s.missing)} to use {s.name}" for s in skipped)
        run.add(
            Check(
                "configuration",
                "Configuration",
                "warning",
                f"{detail}; {skipped_text} (enabled backends come first in the order vault, "
                "aws-secrets-manager, azure-key-vault)",
                f"{fix}, or {enable} if the fallback is intended",
            )
        )
    else:
        run.add(Check("configuration", "Configuration", "passed", detail))


def _missing_sdk(name: str) -> str | None:
    """The command that installs the store's SDK when it is missing; None when it is there."""
    try:
        store = load_store(name)
    except ConfigurationError:  # a broken store is reported on its own
        return None
    if store.sdk_module and not sdk_installed(store.sdk_module):
        return install_command(store)
    return None


def _lacks(name: str, missing: tuple[str, ...]) -> str:
    text = f"{' and '.join(missing)} not set"
    if _missing_sdk(name):
        text += ", and its SDK is not installed"
    return text


def _remedy(name: str, missing: tuple[str, ...]) -> str:
    text = f"set {' and '.join(missing)}"
    install = _missing_sdk(name)
    if install:
        text += f" and run {install}"
    return text
