"""A backend behind the cache: fetch, parse, log each step (lengths and kinds, never values)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from .backends.base import Backend
from .cache import CredentialCache
from .clear_marker import MARKER
from .credentials import Credential, describe_payload, parse_secret
from .errors import BackendError, SecretFormatError, SecretsAuthError
from .log import get_logger
from .settings import BackendSettings

logger = get_logger(__name__)


class CredentialSource:
    """The credential for one backend configuration, through the shared cache."""

    def __init__(
        self,
        backend: Backend | None,
        settings: BackendSettings,
        cache: CredentialCache,
        max_stale_sec: float = 0.0,
        connect: Callable[[BackendSettings], Backend] | None = None,
        profile: str = "env",
    ) -> None:
        self._backend: Backend | None = backend
        self.profile = profile
        self._connect = connect
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

    @property
    def backend(self) -> Backend:
        """The store; after :meth:`forget_backend`, a new one from ``connect``."""
        backend = self._backend
        if backend is None:
            assert self._connect is not None
            backend = self._backend = self._connect(self.settings)
        return backend

    def forget_backend(self) -> Backend | None:
        """Stop using the current backend object, and return it (a forked child: its SDK
        clients and connection pools are the parent's). Only for sources given ``connect``."""
        backend = self._backend
        if self._connect is None:
            return None
        self._backend = None
        return backend

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
        except SecretsAuthError:
            raise
        except Exception as error:  # a store that broke its contract: its type, not its text
            failure = BackendError(
                self.provider,
                "read",
                f"the store failed unexpectedly ({type(error).__name__})",
                "the store package's version, and its log records at "
                "MLFLOW_SECRETS_LOG_LEVEL=DEBUG",
            )
            logger.error("%s", failure)
            raise failure from None
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
        claimed = credential.expires_at  # a bearer JWT's exp claim, if any
        credential.cap_expiry(fetched.expires_at)
        if credential.expires_at is not None:
            by = "its JWT exp claim" if credential.expires_at == claimed else "the store's expiry"
            self._check_not_expired(credential, by)
        logger.info(
            "Secret fetched successfully (provider=%s, cache_hit=false, kind=%s, fingerprint=%s)",
            self.provider,
            credential.kind,
            credential.fingerprint,
        )
        return credential

    def _check_not_expired(self, credential: Credential, by: str) -> None:
        """Refuse a credential that has already expired: sending it would only earn a 401."""
        assert credential.expires_at is not None
        if credential.expires_at > time.time():
            logger.debug("The credential expires by %s: it is refreshed before then", by)
            return
        failure = BackendError(
            self.provider,
            "read",
            f"the secret holds a credential that has already expired (by {by})",
            "that whatever writes the secret puts a current credential there, and that this "
            "machine's clock is right",
        )
        logger.error("%s", failure)
        raise failure

    def __repr__(self) -> str:
        return (
            f"CredentialSource(profile={self.profile}, provider={self.provider}, key={self.key!r})"
        )
