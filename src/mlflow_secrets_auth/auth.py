"""The requests auth object: allowlist check, header, one 401 replay, redirect stripping.

The 401 replay follows requests' own ``HTTPDigestAuth``: remember the body position when the
request is prepared, and on a 401 rewind, copy the request, re-send it through the same adapter
with the same send arguments, and keep the first response in ``history``.
"""

from __future__ import annotations

import functools
import logging
from typing import Any
from urllib.parse import urljoin

from requests import PreparedRequest, Response
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar

from .credentials import Credential
from .errors import HostNotAllowedError
from .hosts import HostPolicy, Origin, origin_of
from .log import get_logger
from .source import CredentialSource

logger = get_logger(__name__)
AUTHORIZATION = "Authorization"


class SecretsAuth(AuthBase):
    """Attaches the current credential to requests bound for allowed origins only."""

    def __init__(
        self, source: CredentialSource, policy: HostPolicy, header_name: str | None = None
    ) -> None:
        self.source = source
        self.policy = policy
        self.header = header_name or AUTHORIZATION
        self._custom = header_name is not None
        self._confirmed: str | None = None  # fingerprint of the last credential a server accepted

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        try:
            origin = self.policy.check(r.url or "")  # raises before any credential is touched
        except HostNotAllowedError as refused:
            logger.warning("Host not allowed: %s", refused.host)
            raise
        credential = self.source.get()
        r.headers[self.header] = credential.raw if self._custom else credential.authorization
        position = None
        tell = getattr(r.body, "tell", None)
        if tell is not None:
            try:
                position = tell()
            except OSError:
                position = None
        # Appended directly: register_hook's isinstance(Callable) check costs more than the rest.
        r.hooks["response"].append(
            functools.partial(self._on_response, credential, origin, position)
        )
        return r

    # -- response handling --------------------------------------------------------------------

    def _on_response(
        self,
        credential: Credential,
        origin: Origin,
        position: int | None,
        r: Response,
        **kwargs: Any,
    ) -> Response:
        if r.is_redirect:
            self._strip_on_cross_origin_redirect(r, origin)
            return r
        if r.status_code < 400 and self._confirmed != credential.fingerprint:
            self._confirmed = credential.fingerprint
            logger.info(
                "Authentication successful (provider=%s, auth_mode=%s)",
                self.source.provider,
                credential.kind,
            )
        if r.status_code != 401 or origin_of(r.url or "") != origin:
            return r
        body: object = r.request.body  # at run time also a file or a generator
        if body is not None and position is None and not isinstance(body, bytes | str):
            logger.warning(
                "401 from %s, but the request body is a stream that cannot be sent twice: "
                "not retrying (the next request will use a fresh credential)",
                origin,
            )
            self.source.invalidate(credential)
            return r
        return self._replay(r, credential, origin, position, kwargs)

    def _strip_on_cross_origin_redirect(
        self, r: Response, origin: Origin, *also: PreparedRequest
    ) -> None:
        """requests follows a redirect by copying the request: strip it before that happens."""
        target = origin_of(urljoin(r.url or "", r.headers.get("location", "")))
        if target == origin:
            return
        removed = None
        for request in (r.request, *also):
            removed = request.headers.pop(self.header, None) or removed
            request.headers.pop(AUTHORIZATION, None)
        if removed is not None:
            logger.info("Redirect to another origin (%s → %s): credentials removed", origin, target)

    def _replay(
        self,
        r: Response,
        failed: Credential,
        origin: Origin,
        position: int | None,
        kwargs: dict[str, Any],
    ) -> Response:
        self.source.invalidate(failed)
        fresh = self.source.get()
        host = origin_of(r.url or "")
        if fresh.fingerprint == failed.fingerprint:
            logger.warning(
                "The server rejected a freshly fetched credential (provider=%s, status=401): "
                "check it is current and meant for %s",
                self.source.provider,
                host,
            )
            return r
        logger.info(
            "401 from %s: retrying once with a refreshed credential (provider=%s)",
            host,
            self.source.provider,
        )
        if position is not None:
            r.request.body.seek(position)  # type: ignore[union-attr]
        r.content  # noqa: B018 - drain so the connection can be reused
        r.close()
        prep = r.request.copy()
        jar = prep._cookies  # type: ignore[attr-defined]
        extract_cookies_to_jar(jar, r.request, r.raw)  # type: ignore[no-untyped-call]
        prep.prepare_cookies(jar)
        value = fresh.header_value(self._custom)
        prep.headers[self.header] = value
        r.request.headers[self.header] = value  # a later same-origin redirect copies this one
        retried: Response = r.connection.send(prep, **kwargs)
        retried.history.append(r)
        retried.request = prep
        if retried.is_redirect:  # requests will follow it from the original request object
            self._strip_on_cross_origin_redirect(retried, origin, r.request)
        if retried.status_code == 401 and logger.isEnabledFor(logging.WARNING):
            logger.warning(
                "The server rejected a freshly fetched credential (provider=%s, status=401): "
                "check it is current and meant for %s",
                self.source.provider,
                host,
            )
        return retried

    def __repr__(self) -> str:
        return f"SecretsAuth(provider={self.source.provider}, header={self.header})"
