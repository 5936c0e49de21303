"""A backend behind the cache: fetch, parse, log each step (lengths and kinds, never values)."""

from __future__ import annotations

import logging

from .backends.base import Backend
from .cache import CredentialCache
from .clear_marker import MARKER
from .credentials import Credential, describe_payload, parse_secret
from .errors import BackendError, SecretFormatError
from .log import get_logger
from .settings import BackendSettings

logger = get_logger(__name__)


class CredentialSource:
    """The credential for one backend configuration, through the shared cache."""

    def __init__(
        self,
        backend: Backend,
        settings: BackendSettings,
        cache: CredentialCache,
        max_stale_sec: float = 0.0,
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.cache = cache
        self.max_stale_sec = max_stale_sec
        self.provider = settings.backend_name
        self.key = f"{settings.identity}#{settings.auth_mode}"

    def get(self) -> Credential:
        if MARKER.poll():  # `mlflow-secrets-auth cache clear` ran somewhere on this machine
            dropped = self.cache.clear()
            logger.info("Cache clear requested on this machine: dropped %d credential(s)", dropped)
        credential, hit = self.cache.get(
            self.key, self.settings.ttl_sec, self._fetch, self.max_stale_sec
        )
        if hit and logger.isEnabledFor(logging.DEBUG):
            logger.debug("Cache hit for key: %s", self.key)
        return credential

    def invalidate(self, credential: Credential) -> bool:
        dropped = self.cache.invalidate(self.key, credential)
        if dropped:
            logger.info(
                "Dropped rejected credential from the cache (provider=%s, fingerprint=%s)",
                self.provider,
                credential.fingerprint,
            )
        return dropped

    def _fetch(self) -> Credential:
        logger.debug("Fetching secret (provider=%s, location=%s)", self.provider, self.key)
        try:
            fetched = self.backend.fetch()
        except BackendError as error:
            logger.error("%s", error)
            raise
        shape = describe_payload(fetched.payload)
        logger.debug(
            "Secret read (provider=%s, version=%s, shape=%s)", self.provider, fetched.version, shape
        )
        try:
            credential = parse_secret(fetched.payload, self.settings.auth_mode)
        except SecretFormatError as error:
            failure = BackendError(self.provider, "parse", error.detail, error.fix)
            logger.error("%s", failure)
            raise failure from None
        logger.info(
            "Secret fetched successfully (provider=%s, cache_hit=false, kind=%s, fingerprint=%s)",
            self.provider,
            credential.kind,
            credential.fingerprint,
        )
        return credential

    def __repr__(self) -> str:
        return f"CredentialSource(provider={self.provider}, key={self.key!r})"
