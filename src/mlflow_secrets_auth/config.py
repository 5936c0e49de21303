"""Small public helpers over the settings, as used in the troubleshooting guide (SPEC §8)."""

from __future__ import annotations

import os

from .backends import store_names
from .hosts import default_rules, mlflow_uris
from .settings import load_general


def is_provider_enabled(name: str) -> bool:
    """Whether backend ``name`` (e.g. ``vault``) is enabled by the environment."""
    normalized = name.strip().lower().replace("_", "-")
    names = store_names()
    if normalized not in names:
        raise ValueError(f"unknown backend {name!r}: valid names are {', '.join(names)}")
    return normalized in load_general(os.environ).enabled


def get_allowed_hosts() -> list[str]:
    """The effective allowlist: MLFLOW_SECRETS_ALLOWED_HOSTS, or the tracking/registry hosts."""
    rules = load_general(os.environ).allowed_hosts
    if rules is None:
        rules = default_rules(*mlflow_uris())
    return [str(rule) for rule in rules]
