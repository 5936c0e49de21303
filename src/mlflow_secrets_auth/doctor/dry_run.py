"""Step 8 (optional): one real MLflow request through the plugin's own auth object.

It proves what the earlier steps can only infer: that the server accepts the credential.
Nothing from the server's answer is repeated beyond status, content type and redirect paths.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from ..backends.base import Backend, FetchedSecret
from ..errors import BackendError, HostNotAllowedError
from ..hosts import Origin, origin_of
from ..settings import BackendSettings, GeneralSettings
from .describe import _secret_name
from .model import Check, _bounded, _Overtime, _Run, _why
from .policy import _not_allowed_fix, _policy

if TYPE_CHECKING:
    import requests

DRY_RUN_PATH = "/api/2.0/mlflow/experiments/search"
#: A path segment (or part of one) that names a sign-in endpoint: /login, /oauth2/sign_in,
#: /sso/saml, /realms/x/protocol/openid-connect/auth, /adfs/ls, ...
_LOGIN_PAGE = re.compile(
    r"(?:^|[/_.-])(?:log-?in|sign-?in|sso|oauth2?|saml2?|openid|oidc|auth|authorize|adfs|idp|cas)"
    r"(?:$|[/_.-])",
    re.IGNORECASE,
)
_MAX_REDIRECTS = 5


def dry_run_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be a dry-run target, or None. Never repeats a password in the URL."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "the URL has an invalid port: pass the MLflow server's base URL"
    example = "e.g. https://mlflow.example.com"
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        shown = "" if "@" in url else f"{url!r} "
        return f"{shown}is not an http(s) URL: pass the MLflow server's base URL, {example}"
    if parts.username is not None or parts.password is not None:
        return (
            "the URL carries a user name or password: never put credentials in a URL; pass "
            f"the bare server URL ({example}) and keep the credential in the secret store"
        )
    if parts.query or parts.fragment:
        return f"pass the server's base URL without a query or '#' part, {example}"
    return None


class _Prefetched:
    """The fresh backend, answering its first fetch with what the read check already got.

    The dry run uses the plugin's own auth object; this avoids a second read for the first
    request while a 401 still triggers the plugin's real re-fetch.
    """

    def __init__(self, backend: Backend, fetched: FetchedSecret) -> None:
        self.name = backend.name
        self._backend = backend
        self._fetched: FetchedSecret | None = fetched

    def fetch(self) -> FetchedSecret:
        fetched, self._fetched = self._fetched, None
        return fetched if fetched is not None else self._backend.fetch()


def _redirect_targets(history: list[requests.Response]) -> list[tuple[Origin, str]]:
    """(origin, path) of every redirect the request followed; never a query string."""
    targets = []
    for response in history:
        location = response.headers.get("Location")
        if location:
            absolute = urljoin(response.url or "", location)
            targets.append((origin_of(absolute), urlsplit(absolute).path or "/"))
    return targets


def _cross_origin(targets: list[tuple[Origin, str]], origin: Origin) -> tuple[Origin, str] | None:
    return next((t for t in targets if t[0] != origin), None)


def _redirected(api: str, origin: Origin, moved: tuple[Origin, str], outcome: str) -> Check:
    """A redirect to another origin: the credential stayed behind (SPEC §5), so whatever
    answered there says nothing about the credential."""
    target, path = moved
    return Check(
        "dry_run",
        "Dry run",
        "failed",
        f"{api} redirected to another {_difference(origin, target)} ({target}{path}): the "
        f"plugin never sends a credential across origins, {outcome}",
        f"use {target} as the --dry-run URL and MLFLOW_TRACKING_URI, or have the server answer "
        "without redirecting",
    )


def _difference(origin: Origin, target: Origin) -> str:
    if target.host != origin.host:
        return "host"
    if target.scheme != origin.scheme:
        return "scheme"
    return "port"


def _dry_run(run: _Run, url: str) -> None:
    title = "Dry run"
    problem = dry_run_url_problem(url)
    if problem is not None:
        run.add(
            Check("dry_run", title, "failed", problem, "pass a URL like https://mlflow.example")
        )
        return
    base = url.strip().rstrip("/")
    api = base + DRY_RUN_PATH
    origin = origin_of(api)
    if run.credential is None or run.fetched is None or run.general is None:
        run.add(Check("dry_run", title, "skipped", f"not run because {_why(run)}"))
        return
    general = run.general
    policy = _policy(run, general)
    try:
        policy.check(api)
    except HostNotAllowedError as error:
        run.add(
            Check("dry_run", title, "failed", str(error), _not_allowed_fix(general, policy, api))
        )
        return

    import requests  # here, not at the top: doctor without --dry-run has no use for it

    from ..auth import SecretsAuth
    from ..cache import CredentialCache
    from ..source import CredentialSource

    assert run.settings is not None and run.settings.backend is not None
    assert run.backend is not None
    settings = run.settings.backend
    source = CredentialSource(_Prefetched(run.backend, run.fetched), settings, CredentialCache())
    header = run.profile.header_name if run.profile is not None else general.header_name
    auth = SecretsAuth(source, policy, header, raise_on_login_page=False)
    timeout = general.timeout_sec
    env = run.env
    insecure = (env.get("MLFLOW_TRACKING_INSECURE_TLS") or "").lower() in ("true", "1")
    verify: bool | str = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or not insecure
    client_cert = env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None
    started = time.monotonic()
    redirects: list[requests.Response] = []  # also known when a later hop fails

    def note(response: requests.Response, *args: object, **kwargs: object) -> None:
        if response.is_redirect:
            redirects.append(response)

    def send() -> requests.Response:
        with requests.Session() as session:
            session.max_redirects = _MAX_REDIRECTS
            answer = session.get(
                api,
                params={"max_results": "1"},
                auth=auth,
                timeout=(timeout, timeout),
                verify=verify,
                cert=client_cert,
                headers={"Accept": "application/json"},
                hooks={"response": note},
            )
            answer.close()
            return answer

    # Connect and read are each bounded by the timeout; redirects and the plugin's one 401
    # re-fetch and replay add steps, so the whole exchange gets a backstop as well.
    limit = timeout * 4 + 1
    try:
        response = _bounded(send, limit)
    except _Overtime:
        run.add(
            Check(
                "dry_run",
                title,
                "failed",
                f"MLflow at {base} did not complete the request within {limit:g}s",
                "network path, firewall and proxy settings; raise MLFLOW_SECRETS_TIMEOUT_SEC if "
                "the server is just slow",
            )
        )
        return
    except requests.exceptions.TooManyRedirects:
        run.add(
            Check(
                "dry_run",
                title,
                "failed",
                f"more than {_MAX_REDIRECTS} redirects from {api}: a proxy or SSO gateway is "
                "looping instead of answering",
                "check the URL and the proxy in front of MLflow",
            )
        )
        return
    except requests.exceptions.RequestException as error:
        from ..network import explain

        moved = _cross_origin(_redirect_targets(redirects), origin_of(api))
        where = f"MLflow at {base}" if moved is None else f"{moved[0]} (after a redirect)"
        detail, fix = explain(error, where, timeout)
        if moved is not None:
            outcome = f"so the request arrived there without one, and failed: {detail}"
            run.add(_redirected(api, origin_of(api), moved, outcome))
            return
        run.add(Check("dry_run", title, "failed", detail, f"the URL, and {fix}"))
        return
    except BackendError as error:  # the plugin's re-fetch after a 401
        detail = f"{error.step} failed: {error.detail}"
        run.add(Check("dry_run", title, "failed", detail, error.fix))
        return
    elapsed = (time.monotonic() - started) * 1000
    run.add(_judge(response, api, origin, elapsed, settings, general))


def _judge(
    response: requests.Response,
    api: str,
    origin: Origin,
    elapsed_ms: float,
    settings: BackendSettings,
    general: GeneralSettings,
) -> Check:
    """Turn the dry run's answer into a check; nothing from the answer's body is repeated."""
    title = "Dry run"
    status = response.status_code
    content_type = response.headers.get("Content-Type", "").lower()
    login_page = "an SSO/proxy login page answered instead of the MLflow API"
    proxy_fix = (
        "point --dry-run and MLFLOW_TRACKING_URI at the MLflow API itself, or have the proxy "
        "accept the plugin's credential on /api/ paths (see MLFLOW_AUTH_HEADER_NAME)"
    )
    host = origin.host
    targets = _redirect_targets(list(response.history))
    for target, path in targets:
        if _LOGIN_PAGE.search(path):
            where = f"{target}{path}"
            return Check(
                "dry_run", title, "failed", f"{login_page} (redirected to {where})", proxy_fix
            )
    moved = _cross_origin(targets, origin)
    if moved is not None:
        outcome = f"so the server that answered (HTTP {status}) never received it"
        return _redirected(api, origin, moved, outcome)
    if status in (401, 403):
        extra = (
            "; a 403 can also mean the user lacks permission to read experiments"
            if status == 403
            else ""
        )
        return Check(
            "dry_run",
            title,
            "failed",
            f"HTTP {status} from {api}: the server rejected the credential: check it is current "
            f"and meant for {host}{extra}",
            f"that the secret at {_secret_name(settings)} holds a current credential for {host} "
            "(rotated or expired?), that it is the right kind for the server (bearer token vs "
            "user name and password), and that the user exists on the server",
        )
    if status == 404:
        return Check(
            "dry_run",
            title,
            "failed",
            f"HTTP 404 from {api}: no MLflow API at this URL",
            "pass the tracking server's base URL (what MLFLOW_TRACKING_URI holds, without "
            "/api/... or /#/ parts); behind a proxy, include its path prefix",
        )
    if "text/html" in content_type:
        return Check(
            "dry_run", title, "failed", f"{login_page} (HTTP {status}, text/html)", proxy_fix
        )
    if 200 <= status < 300:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return Check(
                "dry_run",
                title,
                "failed",
                f"HTTP {status} from {api}, but the answer is not an MLflow JSON object: no "
                "MLflow API at this URL",
                "pass the tracking server's base URL (what MLFLOW_TRACKING_URI holds)",
            )
        header = general.header_name or "Authorization"
        return Check(
            "dry_run",
            title,
            "passed",
            f"HTTP {status} from {api} in {elapsed_ms:.0f} ms: the server accepted the "
            f"credential sent in {header}",
        )
    kind = "the server or a proxy in front of it failed" if status >= 500 else "unexpected answer"
    return Check(
        "dry_run",
        title,
        "failed",
        f"HTTP {status} from {api}: {kind}",
        "the MLflow server's logs and status, and the proxy in front of it",
    )
