"""``mlflow-secrets-auth doctor``: the checks as data (the CLI renders them; nothing prints here).

The order follows the path a credential takes (SPEC §9): configuration → backend reachable →
login → secret read → secret format → header → MLflow activation → optionally one real request.
When a step fails, the later steps that depend on it are reported as skipped "not run because
…", so the first failure is the one to fix (field note 1: say which step broke).

A secret value never appears in a ``detail`` or ``fix``: details carry kinds, key names,
lengths, locations and user names only, and text from a server's answer is never echoed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from .activation import _TRACKING_TITLE, _allowlist, _entry_point, _overrides, _tracking
from .configuration import ENABLE_FIX, _configuration
from .credential_chain import _CHAIN_TITLES, _credential_chain
from .dry_run import DRY_RUN_PATH, _dry_run, dry_run_url_problem
from .model import Check, Status, _Run, doctor_ok, summarize
from .policy import _not_allowed_fix as _not_allowed_fix  # the unit tests use it
from .policy import _policy as _policy  # the unit tests use it
from .profiles import _profile_chain, _profiles

__all__ = [
    "DRY_RUN_PATH",
    "ENABLE_FIX",
    "Check",
    "Status",
    "doctor_ok",
    "dry_run_url_problem",
    "run_doctor",
    "summarize",
]


def run_doctor(
    environ: Mapping[str, str], dry_run_url: str | None = None, profile: str | None = None
) -> list[Check]:
    """Run every check in SPEC §9's order against this environment; never raises for a check.

    With profiles (SPEC §11) the credential checks run per profile: all of them, the one named
    by ``profile``, or the one that serves ``dry_run_url``.
    """
    run = _Run(environ)
    backends: list[object] = []
    try:
        chosen = _profiles(run, profile, dry_run_url)
        if chosen is None:
            run.guarded("configuration", "Configuration", lambda: _configuration(run))
            if run.settings is not None and run.backend is not None:
                run.guarded("secret_read", "Secret read", lambda: _credential_chain(run))
            else:
                reason = run.blocked or "the configuration is not usable"
                for check_id, title in _CHAIN_TITLES:
                    run.add(Check(check_id, title, "skipped", f"not run because {reason}"))
        for item in chosen or ():
            _profile_chain(run, item)
            backends.append(run.backend)
        run.guarded("tracking_auth", _TRACKING_TITLE, lambda: _tracking(run))
        run.guarded("entry_point", "MLflow activation: entry point", lambda: _entry_point(run))
        run.guarded("overrides", "MLflow activation: overriding settings", lambda: _overrides(run))
        run.guarded("allowlist", "MLflow activation: allowed hosts", lambda: _allowlist(run))
        if dry_run_url is not None:
            run.guarded("dry_run", "Dry run", lambda: _dry_run(run, dry_run_url))
    finally:
        for backend in {id(b): b for b in (*backends, run.backend)}.values():
            close = getattr(backend, "close", None)  # SDK clients hold connection pools
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
    return run.checks
