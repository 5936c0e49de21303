"""Parsers for configuration values, shared by the general settings and every store's loader.

Each reads one variable from a mapping (the environment, or a profile table translated to
variable names) and raises :class:`~mlflow_secrets_auth.errors.ConfigurationError` naming the
variable and the accepted form; a value that might be secret is never echoed.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from urllib.parse import urlsplit

from .errors import ConfigurationError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})


def text(env: Mapping[str, str], name: str) -> str | None:
    """The stripped value of ``name``; None when unset or blank."""
    value = env.get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    """A boolean: 1/true/yes/on or 0/false/no/off (case-insensitive)."""
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"{name} is not a boolean: use one of 1, true, yes, on or 0, false, no, off",
        variable=name,
    )


def seconds(env: Mapping[str, str], name: str, default: float, *, allow_zero: bool) -> float:
    """A finite, positive (or, with ``allow_zero``, non-negative) number of seconds."""
    raw = text(env, name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    low_ok = value >= 0 if allow_zero else value > 0
    if not (math.isfinite(value) and low_ok):
        floor = "zero or a positive" if allow_zero else "a positive"
        raise ConfigurationError(
            f"{name} is not a valid number of seconds: use {floor} number, e.g. {default:g}",
            variable=name,
        )
    return value


def http_url(env: Mapping[str, str], name: str, *, https_only: bool, example: str) -> str:
    """An http(s) URL with a host and no user info, without its trailing slash."""
    raw = text(env, name) or ""
    parts = urlsplit(raw)
    schemes = ("https",) if https_only else ("http", "https")
    try:
        parts.port  # noqa: B018 - raises ValueError on a malformed port
        ok = parts.scheme in schemes and bool(parts.hostname) and not parts.username
    except ValueError:
        ok = False
    if not ok:
        raise ConfigurationError(
            f"{name} is not a valid {' or '.join(schemes)} URL: use the form {example}",
            variable=name,
        )
    return raw.rstrip("/")


def digest(env: Mapping[str, str], names: tuple[str, ...]) -> str:
    """A fingerprint of the values of ``names``: a change means an SDK client must be rebuilt."""
    material = "\0".join(f"{n}={env.get(n, '')}" for n in names)
    return hashlib.sha256(material.encode()).hexdigest()
