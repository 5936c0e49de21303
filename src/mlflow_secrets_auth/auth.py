"""The requests auth object: allowlist check, header, one replay, redirect stripping.

The replay follows requests' own ``HTTPDigestAuth``: remember the body position when the
request is prepared, and on a 401 rewind, copy the request, re-send it through the same adapter
with the same send arguments, and keep the first response in ``history``.

An SSO proxy in front of MLflow answers a credential it does not accept with its login page
(``text/html``, often with status 200) or with a redirect to its identity provider, not with a
401. For MLflow API requests both are treated like a 401 (SPEC §7). When one persists, the
response hook raises :class:`LoginPageError`: MLflow reports that error, where it would
otherwise fail to parse the page as JSON.
"""

from __future__ import annotations

import functools
import weakref
from typing import Any, TypedDict
from urllib.parse import urljoin, urlsplit

from requests import PreparedRequest, Response
from requests.auth import AuthBase
from requests.cookies import extract_cookies_to_jar

from .credentials import Credential
from .errors import HostNotAllowedError, LoginPageError
from .hosts import HostPolicy, Origin, origin_of
from .log import get_logger
from .source import CredentialSource

logger = get_logger(__name__)
AUTHORIZATION = "Authorization"
# Artifact downloads are files: an .html artifact is served as text/html and is not a login page.
ARTIFACT_CONTENT_SEGMENT = "/mlflow-artifacts/artifacts/"
DOWNLOAD_METHODS = frozenset({"GET", "HEAD"})
HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
REFUSED_401 = "401"
REPLAYED = "the credential was refused even after one retry with a freshly fetched one"
UNCHANGED = "the credential was refused and the secret store still holds the same one"
STREAMED = (
    "the credential was refused, and the request was not retried because its body is a stream "
    "that cannot be sent twice; the next request fetches a fresh credential"
)
LOGIN_PAGE_FIX = (
    "that the secret holds a credential the proxy in front of MLflow accepts (a service token, "
    "not a browser session), and that MLFLOW_TRACKING_URI is the address of the MLflow API"
)


def is_api_url(url: str) -> bool:
    """True for MLflow REST API URLs: ``/api/`` or ``/ajax-api/`` after any mount prefix.

    requests percent-encodes the slashes of query parameters, so these only match the path.
    """
    return "/api/" in url or "/ajax-api/" in url


def request_path(request: PreparedRequest) -> str:
    """The path of the request's URL, without query (for messages: never a query string)."""
    return urlsplit(request.url or "").path


def is_artifact_download(request: PreparedRequest) -> bool:
    """A download of an artifact's content, which may be an HTML file."""
    return request.method in DOWNLOAD_METHODS and ARTIFACT_CONTENT_SEGMENT in request_path(request)


def html_page_type(r: Response) -> str | None:
    """The media type of an HTML page answer; None for anything else, HTML downloads included."""
    content_type = r.headers.get("content-type")
    if not content_type:
        return None
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type not in HTML_TYPES or "content-disposition" in r.headers:
        return None
    return media_type


class ExchangeState(TypedDict, total=False):
    """What one request's hooks share across its redirect hops (requests copies the hooks)."""

    fresh: Credential  # set once the request was replayed: there is no second replay
    api_request: weakref.ref[PreparedRequest]  # the MLflow API request, once it was redirected


class SecretsAuth(AuthBase):
    """Attaches the current credential to requests bound for allowed origins only.

    ``raise_on_login_page=False`` returns a login page that persists instead of raising, for
    callers that judge the answer themselves (doctor's dry run).
    """

    def __init__(
        self,
        source: CredentialSource,
        policy: HostPolicy,
        header_name: str | None = None,
        raise_on_login_page: bool = True,
    ) -> None:
        self.source = source
        self.policy = policy
        self.header = header_name or AUTHORIZATION
        self._custom = header_name is not None
        self._raise_on_login_page = raise_on_login_page
        self._confirmed: str | None = None  # fingerprint of the last credential a server accepted

    def __call__(self, r: PreparedRequest) -> PreparedRequest:
        url = r.url or ""
        try:
            origin = self.policy.check(url)  # raises before any credential is touched
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
        state: ExchangeState = {}
        # Appended directly: register_hook's isinstance(Callable) check costs more than the rest.
        r.hooks["response"].append(
            functools.partial(
                self._on_response, credential, origin, position, is_api_url(url), state
            )
        )
        return r

    # -- response handling --------------------------------------------------------------------

    def _on_response(
        self,
        credential: Credential,
        origin: Origin,
        position: int | None,
        api: bool,
        state: ExchangeState,
        r: Response,
        **kwargs: Any,
    ) -> Response:
        refusal = self._inspect(r, credential, origin, api, state, ())
        if refusal is None:
            return r
        if "fresh" in state:  # a later hop of a request that was already replayed
            return self._persisted(r, state, refusal, REPLAYED)
        return self._refused(r, credential, origin, position, api, state, refusal, kwargs)

    def _inspect(
        self,
        r: Response,
        credential: Credential,
        origin: Origin,
        api: bool,
        state: ExchangeState,
        also: tuple[PreparedRequest, ...],
    ) -> str | None:
        """Strip a cross-origin redirect, note a success; name the refusal, if ``r`` is one.

        The refusal is ``REFUSED_401`` or, for an MLflow API request, the description of a login
        page: an HTML page, or a redirect to another origin.
        """
        if r.is_redirect:
            target = self._strip_on_cross_origin_redirect(r, origin, also)
            if not api:
                return None
            if "api_request" not in state:  # the first redirect answers the API request itself
                state["api_request"] = weakref.ref(r.request)
            if target is None or origin_of(r.url or "") != origin:
                return None
            return f"a redirect (HTTP {r.status_code}) to another origin, {target}"
        status = r.status_code
        if api and status < 300:
            media_type = html_page_type(r)
            if (
                media_type is not None
                and origin_of(r.url or "") == origin
                and not is_artifact_download(self._api_request(r, state))
            ):
                return f"{media_type} (HTTP {status})"
        if status < 400:
            used = state.get("fresh", credential)
            if self._confirmed != used.fingerprint:
                self._confirmed = used.fingerprint
                logger.info(
                    "Authentication successful (provider=%s, auth_mode=%s)",
                    self.source.provider,
                    used.kind,
                )
            return None
        if status == 401 and origin_of(r.url or "") == origin:
            return REFUSED_401
        return None

    def _refused(
        self,
        r: Response,
        failed: Credential,
        origin: Origin,
        position: int | None,
        api: bool,
        state: ExchangeState,
        refusal: str,
        kwargs: dict[str, Any],
    ) -> Response:
        """A 401 or a login page: invalidate the credential, fetch, replay once."""
        host = origin_of(r.url or "")
        # A login page may answer a hop the API request was redirected to: replay the API request.
        request = r.request if refusal == REFUSED_401 else self._api_request(r, state)
        body: object = request.body  # at run time also a file or a generator
        if body is not None and position is None and not isinstance(body, bytes | str):
            self.source.invalidate(failed)
            if refusal == REFUSED_401:
                logger.warning(
                    "401 from %s, but the request body is a stream that cannot be sent twice: "
                    "not retrying (the next request will use a fresh credential)",
                    host,
                )
                return r
            return self._persisted(r, state, refusal, STREAMED)
        self.source.invalidate(failed)
        fresh = self.source.get()
        if fresh.fingerprint == failed.fingerprint:
            return self._persisted(r, state, refusal, UNCHANGED)
        if refusal == REFUSED_401:
            logger.info(
                "401 from %s: retrying once with a refreshed credential (provider=%s)",
                host,
                self.source.provider,
            )
        else:
            logger.info(
                "Login page instead of the MLflow API from %s (%s): retrying once with a "
                "refreshed credential (provider=%s)",
                host,
                refusal,
                self.source.provider,
            )
        state["fresh"] = fresh
        retried = self._resend(r, request, fresh, position, kwargs)
        # requests follows a redirect of the replay from a request it holds, not from ``prep``.
        again = self._inspect(retried, fresh, origin, api, state, (request, r.request))
        if again is None:
            return retried
        return self._persisted(retried, state, again, REPLAYED)

    def _persisted(self, r: Response, state: ExchangeState, refusal: str, reason: str) -> Response:
        """The refusal stands: a 401 goes back to the caller, a login page raises (by default)."""
        host = origin_of(r.url or "")
        if refusal == REFUSED_401:
            logger.warning(
                "The server rejected a freshly fetched credential (provider=%s, status=401): "
                "check it is current and meant for %s",
                self.source.provider,
                host,
            )
            return r
        request = self._api_request(r, state)
        error = LoginPageError(
            str(host),
            f"{request.method} {request_path(request)}",
            refusal,
            f"{reason} (provider={self.source.provider})",
            LOGIN_PAGE_FIX,
        )
        logger.warning("%s", error)
        if not self._raise_on_login_page:
            return r
        r.close()
        raise error

    @staticmethod
    def _api_request(r: Response, state: ExchangeState) -> PreparedRequest:
        """The MLflow API request behind ``r``: ``r.request`` unless a redirect came between."""
        ref = state.get("api_request")
        request = None if ref is None else ref()
        return r.request if request is None else request

    def _resend(
        self,
        r: Response,
        request: PreparedRequest,
        fresh: Credential,
        position: int | None,
        kwargs: dict[str, Any],
    ) -> Response:
        seek = getattr(request.body, "seek", None)
        if position is not None and seek is not None:
            seek(position)
        r.content  # noqa: B018 - drain so the connection can be reused
        r.close()
        prep = request.copy()
        jar = prep._cookies  # type: ignore[attr-defined]
        extract_cookies_to_jar(jar, r.request, r.raw)  # type: ignore[no-untyped-call]
        prep.prepare_cookies(jar)
        value = fresh.header_value(self._custom)
        prep.headers[self.header] = value
        # A later same-origin redirect is followed from one of these: it must carry the new one.
        request.headers[self.header] = value
        r.request.headers[self.header] = value
        retried: Response = r.connection.send(prep, **kwargs)
        retried.history.append(r)
        retried.request = prep
        return retried

    def _strip_on_cross_origin_redirect(
        self, r: Response, origin: Origin, also: tuple[PreparedRequest, ...]
    ) -> Origin | None:
        """requests follows a redirect by copying a request: strip it before that happens.

        Returns the target of a redirect to another origin; None for a same-origin redirect.
        """
        target = origin_of(urljoin(r.url or "", r.headers.get("location", "")))
        if target == origin:
            return None
        removed = None
        for request in (r.request, *also):
            removed = request.headers.pop(self.header, None) or removed
            request.headers.pop(AUTHORIZATION, None)
        if removed is not None:
            logger.info("Redirect to another origin (%s → %s): credentials removed", origin, target)
        return target

    def __repr__(self) -> str:
        return f"SecretsAuth(provider={self.source.provider}, header={self.header})"
