"""GCP Secret Manager through google-cloud-secret-manager's REST transport, authenticated by
Application Default Credentials (``google.auth.default``): a service-account key or credential
configuration file, workload identity, the metadata server or a ``gcloud`` user, exactly as any
Google Cloud client finds them. The payload's CRC32C checksum is verified before it is used.

The SDK and google-auth are imported inside the methods that use them, so importing this module
(for ``info`` or ``doctor``) loads no ``google.*`` module.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from .. import values
from ..errors import BackendError, ConfigurationError, IncompleteConfigurationError
from ..log import get_logger
from ..network import explain
from .base import CommonSettings, FetchedSecret, SecretStore, StoreSettings, Variable

logger = get_logger(__name__)
NAME = "gcp-secret-manager"
T = TypeVar("T")

DEFAULT_ENDPOINT = "https://secretmanager.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
#: Retries of the answers Google documents as transient (429, 503), inside the time bound.
_RETRY_INITIAL_SEC = 0.25
_RETRY_MAX_SEC = 2.0
_MAX_MESSAGE = 240

#: Read by google-auth and the client library themselves; a change rebuilds the client.
SDK_VARIABLES: tuple[Variable, ...] = (
    Variable(
        "GOOGLE_APPLICATION_CREDENTIALS",
        None,
        "ADC: a service-account key or credential configuration (workload identity federation) "
        "file",
        sdk=True,
    ),
    Variable(
        "CLOUDSDK_CONFIG",
        None,
        "gcloud's configuration directory, where `gcloud auth application-default login` writes "
        "ADC (default ~/.config/gcloud)",
        sdk=True,
    ),
    Variable(
        "GOOGLE_CLOUD_QUOTA_PROJECT", None, "the project billed for quota (user ADC)", sdk=True
    ),
    Variable(
        "GOOGLE_CLOUD_UNIVERSE_DOMAIN",
        None,
        "the universe domain (default googleapis.com)",
        sdk=True,
    ),
    Variable(
        "GOOGLE_API_USE_CLIENT_CERTIFICATE", None, "mutual TLS with a client certificate", sdk=True
    ),
    Variable(
        "GOOGLE_API_USE_MTLS_ENDPOINT",
        None,
        "use the mTLS endpoint: never, auto or always",
        sdk=True,
    ),
    Variable(
        "GCE_METADATA_HOST",
        None,
        "the metadata server (read once per process by google-auth)",
        sdk=True,
    ),
    Variable("GCE_METADATA_IP", None, "the metadata server's address for detection", sdk=True),
    Variable(
        "NO_GCE_CHECK",
        None,
        "true: do not probe for the metadata server (read once per process)",
        sdk=True,
    ),
    Variable("GCE_METADATA_TIMEOUT", None, "seconds per metadata server probe", sdk=True),
    Variable("REQUESTS_CA_BUNDLE", None, "CA bundle for HTTPS (corporate TLS proxies)", sdk=True),
)
_SDK_NAMES = tuple(v.name for v in SDK_VARIABLES)

_FORMS = (
    "projects/PROJECT/secrets/SECRET, projects/PROJECT/secrets/SECRET/versions/VERSION "
    "(a number, an alias or latest), the same with /locations/LOCATION after the project for a "
    "regional secret, or SECRET alone with MLFLOW_GCP_PROJECT (or GOOGLE_CLOUD_PROJECT)"
)
_PROJECT = r"[a-z0-9][a-z0-9.:-]{0,99}"  # an ID, a number, or a domain-scoped example.com:id
_PROJECT_RE = re.compile(_PROJECT)
_SECRET = r"[A-Za-z0-9_-]{1,255}"
_SECRET_RE = re.compile(_SECRET)
_NAME_RE = re.compile(
    rf"projects/(?P<project>{_PROJECT})(?:/locations/(?P<location>[a-z0-9-]{{1,63}}))?"
    rf"/secrets/(?P<secret>{_SECRET})(?:/versions/(?P<version>[A-Za-z0-9_-]{{1,63}}))?"
)

_ADC_FIX = (
    "Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS=<a service-account key or "
    "credential configuration file>; `gcloud auth application-default login` on a workstation; "
    "on GKE, Cloud Run or Compute Engine the attached service account (workload identity) "
    "through the metadata server"
)
_ACCESS_ROLE = "roles/secretmanager.secretAccessor"
_VERSION_IN_MESSAGE = re.compile(r"/versions/([A-Za-z0-9_-]+)\]")
_ACCESS_PERMISSION = "secretmanager.versions.access"


@dataclass(frozen=True, kw_only=True)
class GcpSettings(StoreSettings):
    """Which secret version and which endpoint; credentials come from ADC."""

    project: str
    secret: str
    version: str = "latest"
    #: The region of a regional secret (``projects/P/locations/L/secrets/S``); None: global.
    secret_location: str | None = None
    #: An https URL (a regional or Private Service Connect endpoint); None: the global one.
    api_endpoint: str | None = None
    sdk_environment: str = field(default="", repr=False)  # digest of SDK_VARIABLES

    @property
    def secret_path(self) -> str:
        where = f"/locations/{self.secret_location}" if self.secret_location else ""
        return f"projects/{self.project}{where}/secrets/{self.secret}"

    @property
    def resource(self) -> str:
        """The version's resource name, as AccessSecretVersion takes it."""
        return f"{self.secret_path}/versions/{self.version}"

    @property
    def endpoint_url(self) -> str:
        return self.api_endpoint or DEFAULT_ENDPOINT

    @property
    def identity(self) -> str:
        return f"{NAME}:{self.resource}"

    def describe(self) -> str:
        return (
            f"GCP Secret Manager secret {self.resource} at {self.endpoint_url}, credentials from "
            "Application Default Credentials"
        )

    def endpoint(self) -> str:
        return f"Secret Manager at {self.endpoint_url}"

    def location(self) -> str:
        return self.resource


def parse_secret_name(env: Mapping[str, str]) -> tuple[str, str | None, str, str]:
    """(project, location, secret, version) from MLFLOW_GCP_SECRET_NAME and the project
    variables, or the configuration error naming the variable (never quoting a value)."""
    raw = values.text(env, "MLFLOW_GCP_SECRET_NAME")
    if raw is None:
        raise IncompleteConfigurationError(NAME, ["MLFLOW_GCP_SECRET_NAME"])
    name = raw.strip("/")
    full = _NAME_RE.fullmatch(name)
    if full is not None:
        return (
            full["project"],
            full["location"],
            full["secret"],
            full["version"] or "latest",
        )
    if name.startswith("projects/") or not _SECRET_RE.fullmatch(name):
        raise ConfigurationError(
            f"MLFLOW_GCP_SECRET_NAME is not a Secret Manager secret name: use {_FORMS}",
            variable="MLFLOW_GCP_SECRET_NAME",
        )
    for variable in ("MLFLOW_GCP_PROJECT", "GOOGLE_CLOUD_PROJECT"):
        project = values.text(env, variable)
        if project is None:
            continue
        if not _PROJECT_RE.fullmatch(project):
            raise ConfigurationError(
                f"{variable} is not a Google Cloud project ID or number: use e.g. my-project or "
                "123456789012",
                variable=variable,
            )
        return project, None, name, "latest"
    raise IncompleteConfigurationError(
        NAME,
        [
            "MLFLOW_GCP_PROJECT (or GOOGLE_CLOUD_PROJECT, or the form "
            "projects/PROJECT/secrets/SECRET in MLFLOW_GCP_SECRET_NAME)"
        ],
    )


def parse_endpoint(env: Mapping[str, str]) -> str | None:
    """MLFLOW_GCP_ENDPOINT as an https URL without a path (a bare host name gets https://)."""
    raw = values.text(env, "MLFLOW_GCP_ENDPOINT")
    if raw is None:
        return None
    url = raw if "://" in raw else f"https://{raw}"
    example = "https://secretmanager.europe-west1.rep.googleapis.com"
    checked = values.http_url(
        {"MLFLOW_GCP_ENDPOINT": url}, "MLFLOW_GCP_ENDPOINT", https_only=True, example=example
    )
    if re.fullmatch(r"https://[^/?#]+", checked) is None:
        raise ConfigurationError(
            f"MLFLOW_GCP_ENDPOINT must be a scheme and host only, without a path: e.g. {example}",
            variable="MLFLOW_GCP_ENDPOINT",
        )
    return checked


def _short(text: str) -> str:
    """One line, bounded: service text goes into our errors summarised, never a whole body."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _service_error(error: Any) -> tuple[str, str]:
    """(status, message) from a Google JSON error body; a non-JSON body is not shown."""
    response = getattr(error, "response", None)
    try:
        body = response.json() if response is not None else None
    except ValueError:
        body = None
    inner = body.get("error") if isinstance(body, dict) else None
    if not isinstance(inner, dict):
        kind = response.headers.get("Content-Type", "") if response is not None else ""
        return "", f"an answer that is not a Google API error ({_short(kind) or 'no type'})"
    return str(inner.get("status") or ""), _short(str(inner.get("message") or ""))


def _describe_credentials(credentials: Any) -> tuple[str, str]:
    """(who, IAM member) for messages: which identity ADC picked. Never a token or key."""
    if credentials is None:
        return "no credentials yet", "<member>"
    kind = f"{type(credentials).__module__}.{type(credentials).__name__}"
    email = str(getattr(credentials, "service_account_email", None) or "")
    if email == "default":  # the metadata server's, before the first token
        email = ""
    member = f"serviceAccount:{email}" if email else "<member>"
    if kind == "google.oauth2.service_account.Credentials":
        return f"service account {email} (key file)", member
    if kind.startswith("google.auth.compute_engine."):
        shown = email or "the attached service account"
        return (
            f"{shown} (metadata server: GKE workload identity, Cloud Run or Compute Engine)",
            member,
        )
    if kind == "google.oauth2.credentials.Credentials":
        account = str(getattr(credentials, "account", None) or "")
        member = f"user:{account}" if account else "user:<your account>"
        return f"gcloud user credentials{' of ' + account if account else ''}", member
    if kind.startswith("google.auth.impersonated_credentials."):
        return f"impersonated service account {email}", member
    if kind.startswith(
        ("google.auth.identity_pool.", "google.auth.aws.", "google.auth.pluggable.")
    ):
        via = f" impersonating {email}" if email else ""
        return f"workload identity federation (external account){via}", member
    return f"credentials of type {type(credentials).__name__}", member


def _network_cause(error: BaseException) -> bool:
    """Whether a google-auth failure was a network failure (as opposed to a refusal)."""
    import requests

    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, requests.exceptions.RequestException | OSError):
            return True
        nested = current.args[0] if current.args else None
        current = current.__cause__ or (nested if isinstance(nested, BaseException) else None)
    return False


def _token_answer(error: BaseException) -> str:
    """What the token endpoint said, summarised: an OAuth error line, or an HTTP status with the
    first line of a plain-text answer (the metadata server's); never a whole body."""
    first = error.args[0] if error.args else None
    # RefreshError(TransportError(message, response)), or the TransportError itself
    for candidate in (first, error):
        args = candidate.args if isinstance(candidate, BaseException) else ()
        status = getattr(args[1], "status", None) if len(args) > 1 else None
        if status is None:
            continue
        data = getattr(args[1], "data", b"")
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        lines = text.strip().splitlines()
        line = lines[0] if lines and not lines[0].lstrip().startswith(("<", "{")) else ""
        return f"HTTP {status}: {_short(line)}" if line else f"HTTP {status}"
    one_line = isinstance(first, str) and bool(first.strip()) and "\n" not in first.strip()
    if one_line and len(str(first)) <= 2 * _MAX_MESSAGE and "<" not in str(first):
        return _short(str(first))
    return "an answer that is not an OAuth error (not shown)"


class _WithholdPayloads(logging.Filter):
    """The REST transport logs AccessSecretVersion responses at DEBUG (when a user enables Google
    client logging), payload included; this replaces that payload with a placeholder."""

    def filter(self, record: logging.LogRecord) -> bool:
        response = getattr(record, "httpResponse", None)
        if getattr(record, "rpcName", None) == "AccessSecretVersion" and isinstance(response, dict):
            record.httpResponse = {
                **response,
                "payload": "<withheld by mlflow-secrets-auth: it holds a secret value>",
            }
        return True


_TRANSPORT_LOGGER = "google.cloud.secretmanager_v1.services.secret_manager_service.transports.rest"


def _withhold_payload_logs() -> None:
    transport_logger = logging.getLogger(_TRANSPORT_LOGGER)
    if not any(isinstance(f, _WithholdPayloads) for f in transport_logger.filters):
        transport_logger.addFilter(_WithholdPayloads())


class GcpSecretManagerStore(SecretStore[GcpSettings]):
    """Reads one secret version; keeps one credential and one REST client per instance, so the
    access token and the connection pool are reused between fetches."""

    name: ClassVar[str] = NAME
    prefix: ClassVar[str] = "MLFLOW_GCP"
    sdk_module: ClassVar[str | None] = "google.cloud.secretmanager"
    sdk_install: ClassVar[str | None] = "mlflow-secrets-auth[gcp]"
    variables: ClassVar[tuple[Variable, ...]] = (
        Variable(
            "MLFLOW_GCP_SECRET_NAME",
            "secret_name",
            "projects/P/secrets/S[/versions/V] (also with /locations/L), or S with a project",
        ),
        Variable(
            "MLFLOW_GCP_PROJECT",
            "project",
            "the project of a short MLFLOW_GCP_SECRET_NAME (default GOOGLE_CLOUD_PROJECT)",
        ),
        Variable(
            "GOOGLE_CLOUD_PROJECT",
            None,
            "the project of a short MLFLOW_GCP_SECRET_NAME when MLFLOW_GCP_PROJECT is unset",
        ),
        Variable(
            "MLFLOW_GCP_ENDPOINT",
            "endpoint",
            "a regional or Private Service Connect endpoint, e.g. "
            "https://secretmanager.europe-west1.rep.googleapis.com",
            default=DEFAULT_ENDPOINT,
        ),
        *SDK_VARIABLES,
    )

    def __init__(self, settings: GcpSettings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()
        self._client: Any = None
        self._credentials: Any = None
        self._retry: Any = None

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> GcpSettings:
        project, location, secret, version = parse_secret_name(env)
        return GcpSettings(
            project=project,
            secret_location=location,
            secret=secret,
            version=version,
            api_endpoint=parse_endpoint(env),
            sdk_environment=values.digest(env, _SDK_NAMES),
            **common.kwargs(),
        )

    def fetch(self) -> FetchedSecret:
        s = self.settings
        client = self._get_client()
        response = self._call(
            lambda: client.access_secret_version(
                name=s.resource, retry=self._retry, timeout=s.timeout_sec
            )
        )
        data = bytes(response.payload.data)
        self._verify_checksum(response.payload, data)
        name = str(response.name or s.resource)
        version = name.rsplit("/", 1)[-1] if "/versions/" in name else None
        payload: str | bytes
        try:
            payload = data.decode("utf-8")
        except UnicodeDecodeError:
            payload = data
        logger.debug("GCP secret read (location=%s, version=%s)", name, version)
        return FetchedSecret(payload, version=version, location=name)

    def close(self) -> None:
        """Close the REST transport's HTTP session (a later fetch builds a new client)."""
        with self._lock:
            client, self._client = self._client, None
            self._credentials = None
        if client is not None:
            client.transport.close()

    # -- client --------------------------------------------------------------------------------

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._call(self._new_client)
                who, _ = _describe_credentials(self._credentials)
                logger.debug(
                    "GCP Secret Manager client created (endpoint=%s, credentials=%s)",
                    self.settings.endpoint_url,
                    who,
                )
            return self._client

    def _new_client(self) -> Any:
        import google.auth
        from google.api_core import exceptions as api_exceptions
        from google.api_core import retry as api_retry
        from google.cloud.secretmanager import SecretManagerServiceClient

        s = self.settings
        _withhold_payload_logs()
        # GOOGLE_APPLICATION_CREDENTIALS, then gcloud's ADC file, then the metadata server; the
        # settings digest rebuilds this store when one of those variables changes.
        self._credentials, _ = google.auth.default(scopes=list(SCOPES))
        self._retry = api_retry.Retry(
            predicate=api_retry.if_exception_type(
                api_exceptions.ResourceExhausted, api_exceptions.ServiceUnavailable
            ),
            initial=_RETRY_INITIAL_SEC,
            maximum=_RETRY_MAX_SEC,
            multiplier=2.0,
            timeout=s.timeout_sec,
        )
        options = {"api_endpoint": s.api_endpoint} if s.api_endpoint else None
        try:
            return SecretManagerServiceClient(
                credentials=self._credentials, transport="rest", client_options=options
            )
        except ValueError as error:
            # A universe-domain mismatch, an invalid mTLS setting: configuration, not a secret.
            raise BackendError(
                NAME,
                "connect",
                f"the Secret Manager client could not be created ({_short(str(error))})",
                "MLFLOW_GCP_ENDPOINT, GOOGLE_CLOUD_UNIVERSE_DOMAIN and "
                "GOOGLE_API_USE_CLIENT_CERTIFICATE / GOOGLE_API_USE_MTLS_ENDPOINT",
            ) from None

    def _verify_checksum(self, payload: Any, data: bytes) -> None:
        """Secret Manager sends the payload's CRC32C; a mismatch means it was corrupted on the
        way (neither the data nor the checksums are shown: both derive from the secret)."""
        if "data_crc32c" not in payload:
            logger.debug("GCP secret payload came without a CRC32C checksum")
            return
        try:
            import google_crc32c
        except ImportError:
            raise BackendError(
                NAME,
                "read",
                "cannot verify the payload's CRC32C checksum: google-crc32c is not installed",
                f'pip install "{self.sdk_install}"',
            ) from None
        if google_crc32c.value(data) != int(payload.data_crc32c):
            raise BackendError(
                NAME,
                "read",
                f"the payload of {self.settings.resource} failed its CRC32C check: it was "
                "corrupted between Secret Manager and this process",
                "retry; if it persists, whatever rewrites responses on the way (a TLS-inspecting "
                "proxy) and MLFLOW_GCP_ENDPOINT",
            )

    # -- error mapping -------------------------------------------------------------------------

    def _who(self) -> tuple[str, str]:
        return _describe_credentials(self._credentials)

    def _no_credentials(self, error: BaseException) -> BackendError:
        """google-auth's ADC search failed: nothing found, or a file it was pointed at is bad."""
        text = _short(str(error))
        if text.startswith("Your default credentials were not found"):
            return BackendError(
                NAME,
                "login",
                "no Application Default Credentials were found: GOOGLE_APPLICATION_CREDENTIALS "
                "is not set, gcloud has no application-default login, and no metadata server "
                "answered",
                f"{_ADC_FIX} (https://cloud.google.com/docs/authentication/external/set-up-adc)",
            )
        return BackendError(
            NAME,
            "login",
            f"the Application Default Credentials could not be loaded ({text})",
            "GOOGLE_APPLICATION_CREDENTIALS: the file must exist and hold a service-account key "
            "or a credential configuration (`gcloud iam workload-identity-pools "
            "create-cred-config`); or unset it to use `gcloud auth application-default login` "
            "or the metadata server (workload identity)",
        )

    def _call(self, action: Callable[[], T]) -> T:
        import requests
        from google.api_core import exceptions as api_exceptions
        from google.auth import exceptions as auth_exceptions

        s = self.settings
        try:
            return action()
        except api_exceptions.RetryError as error:
            cause = error.cause
            said = ""
            if isinstance(cause, api_exceptions.GoogleAPICallError):
                status, message = _service_error(cause)
                said = f" (HTTP {cause.code} {status}: {message})"
            raise BackendError(
                NAME,
                "read",
                f"Secret Manager stayed busy or unavailable for {s.resource}{said}; retried for "
                f"{s.timeout_sec:g}s",
                "Google Cloud's status and the project's Secret Manager quota; raise "
                "MLFLOW_GCP_TTL_SEC so processes fetch less often",
            ) from None
        except api_exceptions.GoogleAPICallError as error:
            raise self._api_error(error) from None
        except auth_exceptions.DefaultCredentialsError as error:
            raise self._no_credentials(error) from None
        except auth_exceptions.RefreshError as error:
            raise self._refresh_error(error) from None
        except auth_exceptions.TransportError as error:
            raise self._refresh_error(error) from None
        except requests.exceptions.RequestException as error:
            # A timeout during the TLS handshake mentions _ssl.c; it is still a timeout.
            cause = TimeoutError() if isinstance(error, requests.Timeout) else error
            detail, fix = explain(cause, s.endpoint(), s.timeout_sec)
            raise BackendError(NAME, "connect", detail, f"MLFLOW_GCP_ENDPOINT and {fix}") from None
        except auth_exceptions.GoogleAuthError as error:
            raise BackendError(
                NAME,
                "login",
                f"google-auth failed ({type(error).__name__})",
                f"{_ADC_FIX}; MLFLOW_SECRETS_LOG_LEVEL=DEBUG for details",
            ) from None

    def _token_uri(self) -> str | None:
        """Where the credentials get their tokens (for messages)."""
        credentials = self._credentials
        if type(credentials).__module__.startswith("google.auth.compute_engine"):
            return "the metadata server"
        for attribute in ("token_uri", "_token_uri", "_token_url"):
            value = getattr(credentials, attribute, None)
            if isinstance(value, str) and value:
                return value
        return None

    def _refresh_error(self, error: BaseException) -> BackendError:
        """The token endpoint (or the metadata server) did not issue an access token."""
        s = self.settings
        who, _ = self._who()
        where = self._token_uri() or "the token endpoint"
        if _network_cause(error):
            detail, fix = explain(error, where, s.timeout_sec)
            return BackendError(NAME, "login", f"{detail} (getting a token for {who})", fix)
        kind = type(self._credentials).__module__
        if kind == "google.oauth2.credentials":
            fix = (
                "run `gcloud auth application-default login` again (the refresh token is expired "
                "or revoked), or use a service account; " + _ADC_FIX
            )
        elif kind == "google.oauth2.service_account":
            fix = (
                "the service-account key in GOOGLE_APPLICATION_CREDENTIALS: it may be deleted or "
                "disabled (`gcloud iam service-accounts keys list --iam-account <email>`), and the "
                "system clock"
            )
        elif kind.startswith("google.auth.compute_engine"):
            fix = (
                "the service account attached to this VM, Cloud Run service or GKE pod (GKE "
                "workload identity: the Kubernetes service account's "
                "iam.gke.io/gcp-service-account annotation, and roles/iam.workloadIdentityUser "
                "for it on that Google service account)"
            )
        else:
            fix = _ADC_FIX
        return BackendError(
            NAME,
            "login",
            f"{where} refused to issue an access token for {who} ({_token_answer(error)})",
            fix,
        )

    def _api_error(self, error: Any) -> BackendError:
        s = self.settings
        code = getattr(error, "code", None)
        status, message = _service_error(error)
        said = f"HTTP {code}{' ' + status if status else ''}: {message}"
        where = f"{s.resource} at {s.endpoint_url}"
        who, member = self._who()
        reason = str(getattr(error, "reason", None) or "")
        project_hint = f" --project {s.project}"
        if code == 404:
            fix = (
                "MLFLOW_GCP_SECRET_NAME (secret ID and version) and its project (MLFLOW_GCP_PROJECT"
                f" or GOOGLE_CLOUD_PROJECT for a short name); `gcloud secrets versions list "
                f"{s.secret}{project_hint}`"
            )
            if s.secret_location:
                fix += (
                    f" --location {s.secret_location} (a regional secret needs its regional "
                    "endpoint in MLFLOW_GCP_ENDPOINT)"
                )
            return BackendError(NAME, "read", f"Secret not found: {where} ({said})", fix)
        if code == 403 and (reason == "SERVICE_DISABLED" or "has not been used" in message):
            return BackendError(
                NAME,
                "read",
                f"the Secret Manager API is not enabled in project {s.project} ({said})",
                f"gcloud services enable secretmanager.googleapis.com{project_hint}",
            )
        if code == 403:
            return BackendError(
                NAME,
                "read",
                f"permission denied reading {where} as {who} ({said})",
                f"that this identity has {_ACCESS_PERMISSION} on the secret (role "
                f"{_ACCESS_ROLE}): `gcloud secrets add-iam-policy-binding {s.secret}{project_hint} "
                f"--member={member} --role={_ACCESS_ROLE}`; Secret Manager answers 403 also for a "
                "secret that does not exist, so check MLFLOW_GCP_SECRET_NAME too",
            )
        if code == 400 and (status == "FAILED_PRECONDITION" or " state" in message):
            state = "destroyed" if "DESTROYED" in message else "disabled"
            named = _VERSION_IN_MESSAGE.search(message)
            number = named[1] if named else s.version
            if state == "destroyed":
                fix = (
                    "a destroyed version cannot be restored: point MLFLOW_GCP_SECRET_NAME at "
                    "another version, or add a new version"
                )
            else:
                fix = (
                    f"enable it (`gcloud secrets versions enable {number} --secret {s.secret}"
                    f"{project_hint}`) or point MLFLOW_GCP_SECRET_NAME at an enabled version"
                )
            if s.version == "latest":
                fix += "; latest names the newest version even when it is not enabled"
            return BackendError(
                NAME,
                "read",
                f"version {number} of {s.secret_path} is {state} ({said})",
                fix,
            )
        if code == 401:
            return BackendError(
                NAME,
                "login",
                f"Secret Manager rejected the access token of {who} ({said})",
                f"that the credential is still valid (a deleted key, a revoked login); {_ADC_FIX}",
            )
        if code == 400:
            return BackendError(
                NAME,
                "read",
                f"Secret Manager refused the request for {where} ({said})",
                f"MLFLOW_GCP_SECRET_NAME; the forms are {_FORMS}",
            )
        return BackendError(
            NAME,
            "read",
            f"Secret Manager answered with an error for {where} ({said})",
            "Google Cloud's status page and MLFLOW_GCP_ENDPOINT",
        )
