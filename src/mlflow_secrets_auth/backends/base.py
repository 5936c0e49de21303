"""What every secret store backend provides: an identity for the cache and a fetch."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

Payload = str | bytes | Mapping[str, object]


@dataclass(frozen=True, repr=False)
class FetchedSecret:
    """A raw secret as the store returned it, plus non-secret facts about where it came from."""

    payload: Payload
    version: str | None = None
    location: str = ""
    #: When the store says this value stops being valid, in wall-clock epoch seconds (a Vault
    #: lease, an exec credential's ``expires_at``); the cache refreshes before it and never
    #: serves the value past it.
    expires_at: float | None = None

    def __repr__(self) -> str:
        return (
            f"FetchedSecret(kind={type(self.payload).__name__}, version={self.version!r}, "
            f"location={self.location!r}, expires_at={self.expires_at!r})"
        )


class Backend(Protocol):
    """A secret store. Knows its SDK; knows nothing about HTTP headers or caching.

    ``fetch`` raises :class:`~mlflow_secrets_auth.errors.BackendError` naming the step that
    failed: ``connect`` (network, TLS, timeout), ``login`` (credentials for the store itself),
    ``read`` (the secret: not found, forbidden, deleted). A backend holding an SDK client may
    also define ``close()``; the runtime calls it when it drops the backend.
    """

    name: str

    def fetch(self) -> FetchedSecret: ...
