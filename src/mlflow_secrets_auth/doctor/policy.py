"""The plugin's host policy as this environment would build it, and how to widen it.

The allowlist check and the dry run must judge a URL exactly as the plugin would.
"""

from __future__ import annotations

from ..hosts import ALLOW_HTTP_VARIABLE, ALLOWED_HOSTS_VARIABLE, HostPolicy, origin_of
from ..settings import GeneralSettings
from .model import _Run


def _policy(run: _Run, general: GeneralSettings) -> HostPolicy:
    """The plugin's host policy, with the tracking/registry URIs of *this* environment; for a
    file profile, that profile's hosts."""
    profile = run.profile
    if profile is not None and profile.rules is not None:
        return HostPolicy(profile.rules, profile.allow_http)
    uris = (run.env.get("MLFLOW_TRACKING_URI"), run.env.get("MLFLOW_REGISTRY_URI"))
    return HostPolicy(general.allowed_hosts, general.allow_http, uris=lambda: uris)


def _not_allowed_fix(general: GeneralSettings, policy: HostPolicy, url: str) -> str:
    origin = origin_of(url)
    rules = policy.effective_rules()
    if any(rule.matches(origin.host, origin.port) for rule in rules):
        return f"use https, or set {ALLOW_HTTP_VARIABLE}=true if this network is trusted"
    if general.allowed_hosts is None:
        return (
            f"set MLFLOW_TRACKING_URI to this server, or add {origin.host} to "
            f"{ALLOWED_HOSTS_VARIABLE}"
        )
    return f"add {origin.host} to {ALLOWED_HOSTS_VARIABLE}"
