"""The auth mode in effect, and why, in the words ``info`` and ``doctor`` both use (SPEC §4).

A user who sees "basic" or "bearer" must also see where it came from: the default ``auto``
following the secret's shape, or a variable that forces one mode.
"""

from __future__ import annotations

from collections.abc import Mapping

AUTO_RULE = "a username/password secret → basic, anything else → bearer"


def mode_variable(backend: str) -> str:
    """The variable that sets ``backend``'s auth mode, e.g. ``MLFLOW_VAULT_AUTH_MODE``."""
    from .settings import store_prefix

    return f"{store_prefix(backend)}_AUTH_MODE"


def mode_source(env: Mapping[str, str], backend: str) -> str:
    """``MLFLOW_VAULT_AUTH_MODE unset, the default`` or ``MLFLOW_VAULT_AUTH_MODE=basic``."""
    variable = mode_variable(backend)
    raw = (env.get(variable) or "").strip()
    return f"{variable}={raw.lower()}" if raw else f"{variable} unset, the default"


def mode_in_effect(env: Mapping[str, str], backend: str, mode: str) -> str:
    """The configured mode before any secret is read, with its rule."""
    source = mode_source(env, backend)
    if mode == "auto":
        return f"auto ({source}): {AUTO_RULE}"
    other = "bearer" if mode == "basic" else "basic"
    return f"{mode} ({source}): strict, a secret that fits {other} is an error"


def resolved_mode(env: Mapping[str, str], backend: str, mode: str, shape: str, kind: str) -> str:
    """After the secret was read: ``auto: username/password secret → basic``, or the strict
    mode and the variable that set it."""
    if mode == "auto":
        return f"auto: {shape} secret → {kind}"
    return f"{mode} ({mode_source(env, backend)})"
