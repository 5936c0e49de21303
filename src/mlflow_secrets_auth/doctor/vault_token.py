"""The Login check for a Vault token given as VAULT_TOKEN: is the token itself accepted?

With a token there is no login request, and Vault answers a bad token and a policy that does
not grant the path with the same "permission denied" on the read. ``auth/token/lookup-self``
tells them apart: any valid token with the default policy may look itself up. A token without
the default policy may not, so a refused lookup is confirmed with ``sys/internal/ui/mounts``,
which Vault answers for every valid token and refuses only for an unknown one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..backends.vault_settings import VaultSettings

TokenState = Literal["valid", "invalid", "unknown"]


@dataclass(frozen=True)
class TokenStatus:
    """What Vault says about the token; never the token, its accessor or its id."""

    state: TokenState
    policies: tuple[str, ...] = ()
    #: Seconds left; 0 for a token that never expires; None when the lookup was not allowed.
    ttl: int | None = None
    renewable: bool = False


def token_status(settings: VaultSettings) -> TokenStatus:
    """Look the configured token up; ``unknown`` when Vault could not be asked."""
    import hvac
    import requests
    from hvac import exceptions as vault_errors

    from ..backends.vault_login import user_token
    from ..errors import BackendError

    try:
        token = user_token(settings)  # VAULT_TOKEN, else the Vault CLI's token file
    except BackendError:  # an unreadable token file: the fetch already said so
        return TokenStatus("unknown")
    verify: bool | str = settings.cacert if settings.cacert else not settings.skip_verify
    client = hvac.Client(
        url=settings.addr,
        token=token,
        namespace=settings.namespace,
        verify=verify,
        timeout=settings.timeout_sec,
    )
    try:
        try:
            answer = client.auth.token.lookup_self()
        except vault_errors.Forbidden:
            try:
                client.adapter.get("/v1/sys/internal/ui/mounts")
            except vault_errors.Forbidden:
                return TokenStatus("invalid")
            return TokenStatus("valid")  # valid, but its policies do not include lookup-self
        data = answer.get("data") or {}
        return TokenStatus(
            "valid",
            policies=tuple(str(p) for p in data.get("policies") or ()),
            ttl=int(data.get("ttl") or 0),
            renewable=bool(data.get("renewable")),
        )
    except (vault_errors.VaultError, requests.exceptions.RequestException, ValueError):
        return TokenStatus("unknown")
    finally:
        client.adapter.close()


def describe_token(status: TokenStatus) -> str:
    """``policies default, mlflow-read; expires in 23h 59m`` (no secret in any of it)."""
    if status.ttl is None:
        return "its policies do not allow looking itself up"
    policies = ", ".join(status.policies) or "none"
    return f"policies {policies}; {_lifetime(status.ttl)}"


def _lifetime(ttl: int) -> str:
    if ttl <= 0:
        return "never expires"
    hours, rest = divmod(ttl, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"expires in {hours}h {minutes}m"
    if minutes:
        return f"expires in {minutes}m {seconds}s"
    return f"expires in {seconds}s"
