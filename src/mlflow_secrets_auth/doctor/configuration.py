"""Step 1: can the plugin's configuration be read, and which backend does it choose?

Every later credential step needs the settings and the backend built here.
"""

from __future__ import annotations

from ..errors import ConfigurationError
from ..info import backend_states
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
    skipped_text = "; ".join(
        f"{s.name} skipped: {' and '.join(s.missing)} not set" for s in skipped
    )
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
        fix = "; or ".join(f"set {' and '.join(s.missing)} ({s.name})" for s in skipped)
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
        return fail(str(error), str(error).rpartition(": ")[2], "the backend's SDK is missing")
    run.settings, run.backend = settings, backend
    detail = f"{chosen.backend_name} chosen: {_describe(chosen)}"
    if skipped:
        enable = "remove them from MLFLOW_SECRETS_AUTH_ENABLE"
        fix = "; ".join(f"set {' and '.join(s.missing)} to use {s.name}" for s in skipped)
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
