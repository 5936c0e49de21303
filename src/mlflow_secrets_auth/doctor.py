"""``mlflow-secrets-auth doctor``: the checks as data (the CLI renders them; nothing prints here).

The order follows the path a credential takes (SPEC §9): configuration → backend reachable →
login → secret read → secret format → header → MLflow activation → optionally one real request.
When a step fails, the later steps that depend on it are reported as skipped "not run because
…", so the first failure is the one to fix (field note 1: say which step broke).

A secret value never appears in a ``detail`` or ``fix``: details carry kinds, key names,
lengths, locations and user names only, and text from a server's answer is never echoed.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal, TypeVar
from urllib.parse import urljoin, urlsplit

import requests

from .backends.base import Backend, FetchedSecret, Payload
from .credentials import Credential, describe_payload, parse_secret
from .errors import BackendError, ConfigurationError, HostNotAllowedError, SecretFormatError
from .hosts import ALLOW_HTTP_VARIABLE, ALLOWED_HOSTS_VARIABLE, HostPolicy, origin_of
from .info import ENTRY_POINT_GROUP, PROVIDER_NAME, backend_states, registered_entry_points
from .log import get_logger
from .settings import (
    AwsSettings,
    BackendSettings,
    GeneralSettings,
    Settings,
    VaultSettings,
    load_general,
    load_settings,
)

logger = get_logger(__name__)

Status = Literal["passed", "failed", "warning", "skipped"]
T = TypeVar("T")

DRY_RUN_PATH = "/api/2.0/mlflow/experiments/search"
ENABLE_FIX = (
    "set MLFLOW_SECRETS_AUTH_ENABLE=vault (or aws-secrets-manager, azure-key-vault) and that "
    "backend's variables, e.g. VAULT_ADDR, VAULT_TOKEN and MLFLOW_VAULT_SECRET_PATH"
)
_MODE_VARIABLE = {
    "vault": "MLFLOW_VAULT_AUTH_MODE",
    "aws-secrets-manager": "MLFLOW_AWS_AUTH_MODE",
    "azure-key-vault": "MLFLOW_AZURE_AUTH_MODE",
}
#: A path segment (or part of one) that names a sign-in endpoint: /login, /oauth2/sign_in,
#: /sso/saml, /realms/x/protocol/openid-connect/auth, /adfs/ls, ...
_LOGIN_PAGE = re.compile(
    r"(?:^|[/_.-])(?:log-?in|sign-?in|sso|oauth2?|saml2?|openid|oidc|auth|authorize|adfs|idp|cas)"
    r"(?:$|[/_.-])",
    re.IGNORECASE,
)
_MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Check:
    """One diagnostic result; ``fix`` says what to do when the check failed or warned."""

    id: str
    title: str
    status: Status
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def summarize(checks: list[Check]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "warning": 0, "skipped": 0}
    for check in checks:
        counts[check.status] += 1
    return counts


def doctor_ok(checks: list[Check]) -> bool:
    """Exit status basis: no check failed (warnings and skipped checks do not fail)."""
    return all(check.status != "failed" for check in checks)


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


# -- the run ------------------------------------------------------------------------------------


class _Run:
    """State carried from one check to the next."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.env = environ
        self.checks: list[Check] = []
        self.general: GeneralSettings | None = None
        self.settings: Settings | None = None
        self.backend: Backend | None = None
        self.fetched: FetchedSecret | None = None
        self.credential: Credential | None = None
        self.blocked: str | None = None  # why the credential chain stopped

    def add(self, check: Check) -> None:
        self.checks.append(check)
        logger.debug("Doctor check %s: %s", check.id, check.status)

    def guarded(self, check_id: str, title: str, action: Callable[[], None]) -> None:
        """Run one step; an unexpected error becomes a failed check, never a traceback."""
        try:
            action()
        except Exception as error:  # the type only: an SDK's text may quote a response
            logger.debug("Doctor check %s raised %s", check_id, type(error).__name__)
            self.add(
                Check(
                    check_id,
                    title,
                    "failed",
                    f"unexpected error while checking ({type(error).__name__})",
                    "run with MLFLOW_SECRETS_LOG_LEVEL=DEBUG for details, and report it",
                )
            )
            self.blocked = self.blocked or f"{title.lower()} failed"


def run_doctor(environ: Mapping[str, str], dry_run_url: str | None = None) -> list[Check]:
    """Run every check in SPEC §9's order against this environment; never raises for a check."""
    run = _Run(environ)
    try:
        run.guarded("configuration", "Configuration", lambda: _configuration(run))
        if run.settings is not None and run.backend is not None:
            run.guarded("secret_read", "Secret read", lambda: _credential_chain(run))
        else:
            reason = run.blocked or "the configuration is not usable"
            for check_id, title in _CHAIN_TITLES:
                run.add(Check(check_id, title, "skipped", f"not run because {reason}"))
        run.guarded("tracking_auth", _TRACKING_TITLE, lambda: _tracking(run))
        run.guarded("entry_point", "MLflow activation: entry point", lambda: _entry_point(run))
        run.guarded("overrides", "MLflow activation: overriding settings", lambda: _overrides(run))
        run.guarded("allowlist", "MLflow activation: allowed hosts", lambda: _allowlist(run))
        if dry_run_url is not None:
            run.guarded("dry_run", "Dry run", lambda: _dry_run(run, dry_run_url))
    finally:
        close = getattr(run.backend, "close", None)  # AWS/Azure clients hold connection pools
        if callable(close):
            with contextlib.suppress(Exception):
                close()
    return run.checks


_TRACKING_TITLE = "MLflow activation: MLFLOW_TRACKING_AUTH"
_CHAIN_TITLES = (
    ("backend_reachable", "Backend reachable"),
    ("login", "Login"),
    ("secret_read", "Secret read"),
    ("secret_format", "Secret format"),
    ("auth_header", "Auth header built"),
)


# -- 1. configuration ---------------------------------------------------------------------------


def _describe(settings: BackendSettings) -> str:
    mode = f"auth mode {settings.auth_mode} ({_MODE_VARIABLE[settings.backend_name]})"
    if isinstance(settings, VaultSettings):
        ns = f", namespace {settings.namespace}" if settings.namespace else ""
        return (
            f"Vault at {settings.addr}{ns}, secret {settings.secret_path}, "
            f"{_vault_login(settings)}, {mode}"
        )
    if isinstance(settings, AwsSettings):
        return (
            f"AWS Secrets Manager secret {settings.secret_id} ({settings.version_stage}) in "
            f"region {settings.region or '(from the AWS profile)'}, credentials from boto3's "
            f"chain, {mode}"
        )
    return (
        f"Azure Key Vault {settings.vault_url}, secret {settings.secret_name} "
        f"(version {settings.secret_version or 'latest'}), credential DefaultAzureCredential, "
        f"{mode}"
    )


def _vault_login(settings: VaultSettings) -> str:
    method = settings.login_method
    if method == "token":
        return "token login (VAULT_TOKEN)"
    if method == "approle":
        return f"AppRole login at auth/{settings.approle_mount} (VAULT_ROLE_ID, VAULT_SECRET_ID)"
    return f"Kubernetes login as role {settings.k8s_role} at auth/{settings.k8s_mount}"


def _configuration(run: _Run) -> None:
    def fail(detail: str, fix: str, blocked: str) -> None:
        run.add(Check("configuration", "Configuration", "failed", detail, fix))
        run.blocked = blocked

    try:
        general = run.general = load_general(run.env)
    except ConfigurationError as error:
        variable = error.variable or "the variable named above"
        return fail(str(error), f"correct {variable}", "the configuration could not be read")
    if not general.enabled:
        return fail(
            "no secrets backend is enabled: the plugin is inactive and MLflow requests carry no "
            "plugin credentials",
            ENABLE_FIX,
            "no backend is enabled",
        )
    states = backend_states(run.env, general)
    skipped = [s for s in states if s.state == "skipped"]
    skipped_text = "; ".join(
        f"{s.name} skipped: {' and '.join(s.missing)} not set" for s in skipped
    )
    try:
        settings = load_settings(run.env)
    except ConfigurationError as error:
        invalid = [s for s in states if s.state == "invalid"]
        if invalid:
            return fail(
                invalid[0].error or str(error),
                f"correct {error.variable or 'the variable named above'}",
                "the configuration is invalid",
            )
        fix = "; or ".join(f"set {' and '.join(s.missing)} ({s.name})" for s in skipped)
        return fail(
            f"no enabled backend is fully configured: {skipped_text}",
            fix or f"correct {error.variable}",
            "no enabled backend is fully configured",
        )
    chosen = settings.backend
    if chosen is None:  # enabled but nothing chosen cannot happen; be explicit anyway
        return fail("no backend was chosen", ENABLE_FIX, "no backend was chosen")

    from .backends import create_backend

    try:
        backend = create_backend(chosen)
    except ConfigurationError as error:  # the SDK is not installed
        return fail(str(error), str(error).rpartition(": ")[2], "the backend's SDK is missing")
    run.settings, run.backend = settings, backend
    detail = f"{chosen.backend_name} chosen: {_describe(chosen)}"
    if skipped:
        enable = "remove them from MLFLOW_SECRETS_AUTH_ENABLE"
        fix = "; ".join(f"set {' and '.join(s.missing)} to use {s.name}" for s in skipped)
        run.add(
            Check(
                "configuration",
                "Configuration",
                "warning",
                f"{detail}; {skipped_text} (enabled backends come first in the order vault, "
                "aws-secrets-manager, azure-key-vault)",
                f"{fix}, or {enable} if the fallback is intended",
            )
        )
    else:
        run.add(Check("configuration", "Configuration", "passed", detail))


# -- 2-4. backend reachable, login, secret read ------------------------------------------------


class _Overtime(Exception):
    """The backend call outlived its time budget."""


def _bounded(action: Callable[[], T], limit: float) -> T:
    """Run ``action`` in a daemon thread and give up after ``limit`` seconds.

    The backends bound each network call by MLFLOW_SECRETS_TIMEOUT_SEC already; this is the
    backstop that keeps ``doctor`` itself bounded whatever an SDK does.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(action())
        except BaseException as error:
            failure.append(error)

    worker = threading.Thread(target=target, name="mlflow-secrets-auth-doctor", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise _Overtime
    if failure:
        raise failure[0]
    return result[0]


def _target(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        return f"Vault at {settings.addr}"
    if isinstance(settings, AwsSettings):
        return f"AWS Secrets Manager in region {settings.region or '(from the AWS profile)'}"
    return f"Key Vault at {settings.vault_url}"


def _login_passed(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        if settings.login_method == "token":
            return "token login (VAULT_TOKEN): Vault accepted the token for the read"
        return f"{_vault_login(settings)} succeeded"
    if isinstance(settings, AwsSettings):
        return "AWS credentials from boto3's chain were accepted"
    return "DefaultAzureCredential obtained a token that Key Vault accepted"


def _secret_name(settings: BackendSettings) -> str:
    if isinstance(settings, VaultSettings):
        return settings.secret_path
    if isinstance(settings, AwsSettings):
        return f"{settings.secret_id} ({settings.version_stage})"
    return settings.secret_name


def _credential_chain(run: _Run) -> None:
    assert run.settings is not None and run.backend is not None and run.general is not None
    settings = run.settings.backend
    assert settings is not None
    backend = run.backend
    target = _target(settings)
    limit = run.general.timeout_sec * 3 + 1
    started = time.monotonic()
    try:
        fetched = _bounded(backend.fetch, limit)
    except _Overtime:
        run.add(
            Check(
                "backend_reachable",
                "Backend reachable",
                "failed",
                f"{target} did not complete the secret fetch within {limit:g}s",
                "network path, firewall and proxy settings; raise MLFLOW_SECRETS_TIMEOUT_SEC if "
                "the service is just slow",
            )
        )
        _skip_rest(run, ("login", "secret_read"), f"{target} did not answer in time")
        return
    except BackendError as error:
        _report_backend_error(run, settings, error)
        return
    except Exception as error:  # the type only: an SDK's text may quote a response
        logger.debug("Doctor: the backend fetch raised %s", type(error).__name__)
        run.add(
            Check(
                "backend_reachable",
                "Backend reachable",
                "failed",
                f"unexpected error while fetching the secret from {target} "
                f"({type(error).__name__})",
                "run with MLFLOW_SECRETS_LOG_LEVEL=DEBUG for details, and report it",
            )
        )
        _skip_rest(run, ("login", "secret_read"), "the fetch failed unexpectedly")
        return
    elapsed = (time.monotonic() - started) * 1000
    run.fetched = fetched
    run.add(Check("backend_reachable", "Backend reachable", "passed", f"reached {target}"))
    run.add(Check("login", "Login", "passed", _login_passed(settings)))
    version = f", version {fetched.version}" if fetched.version else ""
    where = fetched.location or _secret_name(settings)
    run.add(
        Check(
            "secret_read",
            "Secret read",
            "passed",
            f"read {where}{version} in {elapsed:.0f} ms",
        )
    )
    run.guarded("secret_format", "Secret format", lambda: _secret_format(run, settings, fetched))
    if run.credential is None:
        run.add(
            Check("auth_header", "Auth header built", "skipped", "not run because " + _why(run))
        )
    else:
        run.guarded("auth_header", "Auth header built", lambda: _auth_header(run))


def _why(run: _Run) -> str:
    return run.blocked or "no credential was obtained"


def _skip_rest(run: _Run, ids: tuple[str, ...], reason: str) -> None:
    titles = dict(_CHAIN_TITLES)
    for check_id in (*ids, "secret_format", "auth_header"):
        run.add(Check(check_id, titles[check_id], "skipped", f"not run because {reason}"))
    run.blocked = reason


def _report_backend_error(run: _Run, settings: BackendSettings, error: BackendError) -> None:
    target = _target(settings)
    step = error.step
    failed = Check(
        {"connect": "backend_reachable", "login": "login"}.get(step, "secret_read"),
        {"connect": "Backend reachable", "login": "Login"}.get(step, "Secret read"),
        "failed",
        f"{step} failed: {error.detail}",
        error.fix,
    )
    if step == "connect":
        run.add(failed)
        _skip_rest(run, ("login", "secret_read"), f"{target} could not be reached")
        return
    run.add(Check("backend_reachable", "Backend reachable", "passed", f"reached {target}"))
    if step == "login":
        run.add(failed)
        _skip_rest(run, ("secret_read",), "the login failed")
        return
    if isinstance(settings, VaultSettings) and settings.login_method == "token":
        login = "token login (VAULT_TOKEN): no separate login step; the read checks the token"
    else:
        login = _login_passed(settings)
    run.add(Check("login", "Login", "passed", login))
    run.add(failed)
    _skip_rest(run, (), "the secret could not be read")


# -- 5. secret format ---------------------------------------------------------------------------


def _json_object(payload: Payload) -> Mapping[str, object] | None:
    if isinstance(payload, Mapping):
        return payload
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    if text.strip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, dict):
            return data
    return None


def _shape(payload: Payload) -> str:
    """The stored secret's shape in words: kinds, key names and lengths only."""
    facts = describe_payload(payload)
    data = _json_object(payload)
    if isinstance(payload, Mapping):
        keys = ", ".join(sorted(map(str, payload))) or "none"
        return f"a key/value secret with keys {keys}"
    kind = "binary" if facts.get("kind") == "binary" else "text"
    if data is not None:
        keys = ", ".join(sorted(map(str, data))) or "none"
        return f"JSON {kind} ({facts.get('length')} characters) with keys {keys}"
    return f"a plain {kind} value of {facts.get('length')} characters"


def _padded_fields(payload: Payload) -> list[str]:
    """Which parts of the stored secret have surrounding white space (field note 4)."""
    data = _json_object(payload)
    padded: list[str] = []
    if data is not None:
        for key in ("token", "username", "password"):
            value = data.get(key)
            if isinstance(value, str) and value != value.strip():
                padded.append(_padding_words(key, value))
    if not isinstance(payload, Mapping):
        facts = describe_payload(payload)
        if facts.get("surrounding_whitespace") and (data is None or not padded):
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            padded.append(_padding_words("value", str(text)))
    return padded


def _padding_words(what: str, value: str) -> str:
    if value.endswith(("\n", "\r")):
        return f"the {what} ends with a line break"
    return f"the {what} has surrounding white space"


def _secret_format(run: _Run, settings: BackendSettings, fetched: FetchedSecret) -> None:
    mode = settings.auth_mode
    mode_var = _MODE_VARIABLE[settings.backend_name]
    shape = _shape(fetched.payload)
    data = _json_object(fetched.payload)
    try:
        credential = parse_secret(fetched.payload, mode)
    except SecretFormatError as error:
        has_user_pass = data is not None and ("username" in data or "password" in data)
        if mode == "bearer" and has_user_pass and "auth mode is bearer" in error.detail:
            fix = f'set {mode_var}=basic, or store {{"token": "..."}} instead'
        elif mode == "basic" and not has_user_pass and "user:pass" in error.detail:
            fix = (
                f"if this is a token, set {mode_var}=bearer (the default); for basic mode store "
                '{"username": "...", "password": "..."}'
            )
        else:
            fix = error.fix
        run.add(
            Check(
                "secret_format",
                "Secret format",
                "failed",
                f"the stored secret is {shape}; configured {mode} mode ({mode_var}): "
                f"{error.detail}",
                fix,
            )
        )
        run.blocked = "the secret's format does not fit the auth mode"
        return
    run.credential = credential
    what = (
        f"basic credentials for user {credential.username}"
        if credential.kind == "basic"
        else "a bearer token"
    )
    detail = f"the stored secret is {shape}; parsed as {what} ({mode} mode, {mode_var})"
    padded = _padded_fields(fetched.payload)
    token_has_colon = credential.kind == "bearer" and ":" in credential.header_value(
        custom_header=True
    )
    if padded:
        run.add(
            Check(
                "secret_format",
                "Secret format",
                "warning",
                f"{detail}; {', '.join(padded)}: the plugin strips it, but other tools that "
                "read this secret may not",
                "store the value without surrounding white space (e.g. `printf %s`, not `echo`)",
            )
        )
    elif token_has_colon:
        run.add(
            Check(
                "secret_format",
                "Secret format",
                "warning",
                f"{detail}; the token contains ':', which is what a user:pass value looks like",
                f"if it is a user name and password, set {mode_var}=basic; if it is a token, "
                "nothing to do",
            )
        )
    else:
        run.add(Check("secret_format", "Secret format", "passed", detail))


# -- 6. auth header -----------------------------------------------------------------------------


def _auth_header(run: _Run) -> None:
    import requests.utils
    from requests.exceptions import InvalidHeader

    assert run.credential is not None and run.general is not None
    credential = run.credential
    custom = run.general.header_name is not None
    header = run.general.header_name or "Authorization"
    value = credential.header_value(custom)
    try:
        requests.utils.check_header_validity((header, value))
    except InvalidHeader:  # its message quotes the value: say it in our own words
        run.add(
            Check(
                "auth_header",
                "Auth header built",
                "failed",
                f"the {header} header value is not valid HTTP (line breaks or leading spaces)",
                "store the credential on one line without surrounding white space",
            )
        )
        run.credential = None
        run.blocked = "the header could not be built"
        return
    if custom:
        form = "the raw token (no 'Bearer ' prefix)" if credential.kind == "bearer" else "raw"
        shown = f"{header}: {form}, {len(value)} characters"
    elif credential.kind == "basic":
        shown = f"{header}: Basic <{len(value) - 6} characters>, user {credential.username}"
    else:
        shown = f"{header}: Bearer <{len(value) - 7} characters>"
    run.add(
        Check(
            "auth_header",
            "Auth header built",
            "passed",
            f"{shown} (fingerprint {credential.fingerprint}; the value is never shown)",
        )
    )


# -- 7. MLflow activation -----------------------------------------------------------------------


def _tracking(run: _Run) -> None:
    title = _TRACKING_TITLE
    value = run.env.get("MLFLOW_TRACKING_AUTH")
    fix = f"export MLFLOW_TRACKING_AUTH={PROVIDER_NAME}"
    if not value:
        run.add(
            Check(
                "tracking_auth",
                title,
                "failed",
                "MLFLOW_TRACKING_AUTH is not set: MLflow never calls the plugin, so its requests "
                "carry no credential from the secret store",
                fix,
            )
        )
    elif value == PROVIDER_NAME:
        run.add(Check("tracking_auth", title, "passed", f"MLFLOW_TRACKING_AUTH={PROVIDER_NAME}"))
    elif value.strip() == PROVIDER_NAME:
        run.add(
            Check(
                "tracking_auth",
                title,
                "failed",
                "MLFLOW_TRACKING_AUTH has surrounding white space; MLflow compares the name "
                "exactly and will not find the plugin",
                fix,
            )
        )
    else:
        run.add(
            Check(
                "tracking_auth",
                title,
                "failed",
                f"MLFLOW_TRACKING_AUTH={value!r} selects another provider, not this plugin",
                fix,
            )
        )


def _entry_point(run: _Run) -> None:
    title = "MLflow activation: entry point"
    found = registered_entry_points()
    reinstall = 'pip install --force-reinstall "mlflow-secrets-auth" in this environment'
    if not found:
        run.add(
            Check(
                "entry_point",
                title,
                "failed",
                f"no entry point {PROVIDER_NAME} in group {ENTRY_POINT_GROUP}: MLflow cannot find "
                "the plugin (installed without its package metadata?)",
                reinstall,
            )
        )
        return
    entry = found[0]
    try:
        factory = entry.load()
        name = factory().get_name()
    except Exception as error:  # what MLflow would hit when it registers the plugin
        run.add(
            Check(
                "entry_point",
                title,
                "failed",
                f"the entry point {entry.value} cannot be loaded ({type(error).__name__})",
                reinstall,
            )
        )
        return
    if name != PROVIDER_NAME:
        run.add(
            Check(
                "entry_point",
                title,
                "failed",
                f"the entry point loads a provider named {name!r}, not {PROVIDER_NAME!r}",
                reinstall,
            )
        )
        return
    mlflow = _mlflow_version()
    detail = f"{PROVIDER_NAME} = {entry.value} in {ENTRY_POINT_GROUP} loads; {mlflow}"
    if len(found) > 1:
        run.add(
            Check(
                "entry_point",
                title,
                "warning",
                f"{detail}; but {len(found)} installations register {PROVIDER_NAME}",
                "uninstall the extra copies (pip uninstall mlflow-secrets-auth, then install once)",
            )
        )
        return
    run.add(Check("entry_point", title, "passed", detail))


def _mlflow_version() -> str:
    for name in ("mlflow", "mlflow-skinny"):
        try:
            return f"{name} {importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            continue
    return "MLflow itself is not installed in this environment"


def _overrides(run: _Run) -> None:
    title = "MLflow activation: overriding settings"
    env = run.env
    failed: list[tuple[str, str]] = []
    warned: list[tuple[str, str]] = []
    sigv4 = env.get("MLFLOW_TRACKING_AWS_SIGV4")
    if sigv4 is not None:
        lowered = sigv4.lower()
        if lowered in ("true", "1"):
            failed.append(
                (
                    "MLFLOW_TRACKING_AWS_SIGV4=true: MLflow signs its requests with AWS SigV4 "
                    "instead of calling any auth plugin, so this plugin is bypassed entirely",
                    "unset MLFLOW_TRACKING_AWS_SIGV4 (or set it to false)",
                )
            )
        elif lowered not in ("false", "0"):
            failed.append(
                (
                    f"MLFLOW_TRACKING_AWS_SIGV4={sigv4!r} is not a value MLflow accepts; its "
                    "requests fail before any plugin runs",
                    "unset MLFLOW_TRACKING_AWS_SIGV4 (or set it to false)",
                )
            )
    general = run.general
    custom = general.header_name if general is not None else None
    effect = (
        f"MLflow sends it in Authorization next to the plugin's {custom} header, and the server "
        "may use either"
        if custom
        else "MLflow puts it in the Authorization header and the plugin's header replaces it"
    )
    if env.get("MLFLOW_TRACKING_TOKEN"):
        warned.append(
            (
                f"MLFLOW_TRACKING_TOKEN is set: {effect}",
                "unset MLFLOW_TRACKING_TOKEN so that only the secret store's credential is used",
            )
        )
    if env.get("MLFLOW_TRACKING_USERNAME") and env.get("MLFLOW_TRACKING_PASSWORD"):
        warned.append(
            (
                f"MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD are set: {effect}",
                "unset MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD",
            )
        )
    findings = failed + warned
    if not findings:
        run.add(
            Check(
                "overrides",
                title,
                "passed",
                "nothing overrides or bypasses the plugin (MLFLOW_TRACKING_AWS_SIGV4, "
                "MLFLOW_TRACKING_TOKEN, MLFLOW_TRACKING_USERNAME/PASSWORD are not in effect)",
            )
        )
        return
    status: Status = "failed" if failed else "warning"
    run.add(
        Check(
            "overrides",
            title,
            status,
            "; ".join(detail for detail, _ in findings),
            "; ".join(fix for _, fix in findings),
        )
    )


def _policy(run: _Run, general: GeneralSettings) -> HostPolicy:
    """The plugin's host policy, with the tracking/registry URIs of *this* environment."""
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


def _allowlist(run: _Run) -> None:
    title = "MLflow activation: allowed hosts"
    general = run.general
    if general is None:
        run.add(
            Check(
                "allowlist", title, "skipped", "not run because the configuration is not readable"
            )
        )
        return
    policy = _policy(run, general)
    rules = policy.effective_rules()
    source = (
        f"{ALLOWED_HOSTS_VARIABLE}={','.join(map(str, rules))}"
        if general.allowed_hosts is not None
        else f"{ALLOWED_HOSTS_VARIABLE} unset: the tracking/registry host(s) "
        f"{','.join(map(str, rules)) or '(none)'}"
    )
    tracking = run.env.get("MLFLOW_TRACKING_URI")
    if not tracking:
        run.add(
            Check(
                "allowlist",
                title,
                "warning",
                "MLFLOW_TRACKING_URI is not set here: unless the code calls "
                "mlflow.set_tracking_uri(), MLflow uses a local store and sends no requests the "
                f"plugin could authenticate ({source})",
                "export MLFLOW_TRACKING_URI=https://your-mlflow-server",
            )
        )
        return
    problems: list[tuple[str, str]] = []
    allowed: list[str] = []
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        uri = run.env.get(variable)
        if not uri:
            continue
        scheme = urlsplit(uri).scheme.lower()
        if scheme not in ("http", "https"):
            if variable == "MLFLOW_TRACKING_URI":
                problems.append(
                    (
                        f"MLFLOW_TRACKING_URI is a {scheme or 'local'} store, not an HTTP "
                        "server: the plugin is not used for it",
                        "set MLFLOW_TRACKING_URI to your MLflow server's http(s) URL",
                    )
                )
            continue
        try:
            origin = policy.check(uri)
        except HostNotAllowedError as error:
            problems.append((str(error), _not_allowed_fix(general, policy, uri)))
            continue
        allowed.append(f"{origin.host}:{origin.port} ({variable})")
    failed = [p for p in problems if "not an HTTP server" not in p[0]]
    if problems:
        status: Status = "failed" if failed else "warning"
        run.add(
            Check(
                "allowlist",
                title,
                status,
                "; ".join(detail for detail, _ in problems),
                "; ".join(fix for _, fix in problems),
            )
        )
        return
    everything = any(rule.pattern == "*" and rule.port is None for rule in rules)
    detail = f"credentials may go to {', '.join(allowed)}; allowlist: {source}"
    if everything:
        run.add(
            Check(
                "allowlist",
                title,
                "warning",
                f"{detail}; '*' sends the credential to any host MLflow is pointed at",
                f"list your MLflow host(s) in {ALLOWED_HOSTS_VARIABLE} instead of '*'",
            )
        )
        return
    run.add(Check("allowlist", title, "passed", detail))


# -- 8. dry run ---------------------------------------------------------------------------------


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


def _redirect_targets(history: list[requests.Response]) -> list[tuple[str, str, str]]:
    """(scheme, host, path) of every redirect the request followed; never a query string."""
    targets = []
    for response in history:
        location = response.headers.get("Location")
        if location:
            target = urlsplit(urljoin(response.url or "", location))
            targets.append((target.scheme, (target.hostname or "").lower(), target.path or "/"))
    return targets


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
    host = (urlsplit(base).hostname or "").lower()
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

    from .auth import SecretsAuth
    from .cache import CredentialCache
    from .source import CredentialSource

    assert run.settings is not None and run.settings.backend is not None
    assert run.backend is not None
    settings = run.settings.backend
    source = CredentialSource(_Prefetched(run.backend, run.fetched), settings, CredentialCache())
    auth = SecretsAuth(source, policy, general.header_name)
    timeout = general.timeout_sec
    env = run.env
    insecure = (env.get("MLFLOW_TRACKING_INSECURE_TLS") or "").lower() in ("true", "1")
    verify: bool | str = env.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or not insecure
    client_cert = env.get("MLFLOW_TRACKING_CLIENT_CERT_PATH") or None
    started = time.monotonic()

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
        from .network import explain

        detail, fix = explain(error, f"MLflow at {base}", timeout)
        run.add(Check("dry_run", title, "failed", detail, f"the URL, and {fix}"))
        return
    except BackendError as error:  # the plugin's re-fetch after a 401
        detail = f"{error.step} failed: {error.detail}"
        run.add(Check("dry_run", title, "failed", detail, error.fix))
        return
    elapsed = (time.monotonic() - started) * 1000
    run.add(_judge(response, api, host, elapsed, settings, general))


def _judge(
    response: requests.Response,
    api: str,
    host: str,
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
    targets = _redirect_targets(list(response.history))
    for scheme, target_host, path in targets:
        if _LOGIN_PAGE.search(path):
            where = f"{scheme}://{target_host}{path}"
            return Check(
                "dry_run", title, "failed", f"{login_page} (redirected to {where})", proxy_fix
            )
    moved = next((t for t in targets if t[1] != host), None)
    if moved is not None:
        return Check(
            "dry_run",
            title,
            "failed",
            f"{api} redirected to another host ({moved[0]}://{moved[1]}): credentials are never "
            "sent across hosts, so this request reached it without one",
            f"use {moved[0]}://{moved[1]} as --dry-run URL and MLFLOW_TRACKING_URI",
        )
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
