"""Data for ``mlflow-secrets-auth info``: what is installed, what this process sees, no secrets.

Field note 7 ("environment not reaching the process"): the most useful answer to "why is the
plugin not doing anything?" is the list of variables this very process saw, with secret values
masked, and which backend that configuration selects. Nothing here contacts a server or imports
a backend SDK (``importlib.util.find_spec`` only locates it).
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import os
import platform
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from . import __version__
from .backends import (
    BUILTIN_ORDER,
    StoreUnavailableError,
    installed_stores,
    load_store,
    store_names,
)
from .errors import ConfigurationError, IncompleteConfigurationError
from .log import get_logger
from .settings import (
    BackendName,
    BackendSettings,
    GeneralSettings,
    known_variables,
    load_general,
    load_store_settings,
)

if TYPE_CHECKING:
    from .backends.base import SecretStore

ENTRY_POINT_GROUP = "mlflow.request_auth_provider"
DISTRIBUTION = "mlflow-secrets-auth"
PROVIDER_NAME = "mlflow_secrets_auth"
MASK = "***"

#: Variables whose value is a credential, masked whatever their name.
SECRET_VARIABLES = frozenset(
    {
        "VAULT_TOKEN",
        "VAULT_SECRET_ID",
        "MLFLOW_VAULT_JWT_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AZURE_CLIENT_SECRET",
        "IDENTITY_HEADER",
        "MSI_SECRET",
        "MLFLOW_TRACKING_TOKEN",
        "MLFLOW_TRACKING_PASSWORD",
        # A command line may carry a credential as an argument; `describe` names its program.
        "MLFLOW_EXEC_COMMAND",
    }
)
_SECRET_WORDS = frozenset({"TOKEN", "SECRET", "PASSWORD", "KEY", "PASSPHRASE", "CREDENTIAL"})
#: Names that contain a secret-sounding word but say *where* a secret is, never what it is.
#: Masking them would hide exactly what a user needs to check (the path, name or vault URL).
NOT_SECRET_VARIABLES = frozenset(
    {
        "MLFLOW_VAULT_SECRET_PATH",
        "MLFLOW_AWS_SECRET_NAME",
        "MLFLOW_AWS_SECRET_ID",
        "MLFLOW_AZURE_SECRET_NAME",
        "MLFLOW_AZURE_SECRET_VERSION",
        "MLFLOW_AZURE_KEY_VAULT_URL",
        "AZURE_KEY_VAULT_URL",
        "MLFLOW_VAULT_K8S_TOKEN_PATH",
        "MLFLOW_VAULT_JWT_TOKEN_PATH",
        "MLFLOW_VAULT_SECRET_ID_PATH",
        "MLFLOW_VAULT_RENEW_TOKEN",  # a yes/no switch
        "ACTIONS_ID_TOKEN_REQUEST_URL",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    }
)
#: MLflow's own variables that decide whether (and how) MLflow uses the plugin.
MLFLOW_VARIABLES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "MLFLOW_TRACKING_AUTH",
    "MLFLOW_TRACKING_AWS_SIGV4",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
)
logger = get_logger(__name__)


def is_secret_variable(name: str) -> bool:
    """Whether a variable's value must be masked (explicit list, then any secret-sounding word).

    Words, not substrings: ``MLFLOW_SECRETS_*`` (plural, the plugin's own settings) is shown.
    """
    if name in SECRET_VARIABLES:
        return True
    if name in NOT_SECRET_VARIABLES:
        return False
    declared = _declared_secrecy().get(name)
    if declared is not None:
        return declared
    return any(word in _SECRET_WORDS for word in name.upper().split("_"))


@functools.cache
def _declared_secrecy() -> dict[str, bool]:
    """What the built-in stores declare about their own variables (the SDKs' are not theirs to
    declare, so the name heuristics still apply to those)."""
    found: dict[str, bool] = {}
    for name in BUILTIN_ORDER:
        try:
            store = load_store(name)
        except ConfigurationError:
            continue
        found.update({v.name: v.secret for v in store.variables if not v.sdk})
    return found


def _mask_url_password(value: str) -> str:
    """``https://user:pw@host`` → ``https://user:***@host``; anything else unchanged."""
    if "@" not in value or "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return MASK
    if password is None:
        return value
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def masked_value(name: str, value: str) -> str:
    """The value as ``info`` shows it: ``***`` for secrets, URLs without their password."""
    return MASK if is_secret_variable(name) else _mask_url_password(value)


def sdk_installed(module: str) -> bool:
    """Whether a backend SDK can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a missing parent package raises ModuleNotFoundError
        return False


def distribution_version(*names: str) -> str | None:
    for name in names:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def registered_entry_points() -> list[importlib.metadata.EntryPoint]:
    """Entry points named ``mlflow_secrets_auth`` in MLflow's request-auth group (not loaded),
    one per installation of this distribution on the path.

    Only this distribution's metadata is read, not every installed one's, and a second
    installation shadowed by the first is still seen.
    """
    return [
        ep
        for dist in importlib.metadata.distributions(name=DISTRIBUTION)
        for ep in dist.entry_points
        if ep.group == ENTRY_POINT_GROUP and ep.name == PROVIDER_NAME
    ]


@dataclass(frozen=True)
class BackendState:
    """How one backend fares in the selection that :func:`settings.load_settings` makes."""

    name: BackendName
    enabled: bool
    #: chosen | skipped (incomplete) | invalid (malformed value) | broken (the store failed to
    #: load) | not needed | disabled
    state: str
    missing: tuple[str, ...] = ()
    error: str | None = None
    settings: BackendSettings | None = field(default=None, repr=False)


def backend_states(env: Mapping[str, str], general: GeneralSettings) -> list[BackendState]:
    """Every backend in priority order, with why it was chosen, skipped or not considered.

    Mirrors ``load_settings``: the first enabled backend whose configuration is complete is
    chosen; an incomplete one is skipped; a malformed value stops the selection.
    """
    states: list[BackendState] = []
    decided = False
    for name in store_names():
        if name not in general.enabled:
            states.append(BackendState(name, False, "disabled"))
            continue
        if decided:
            states.append(BackendState(name, True, "not needed"))
            continue
        try:
            loaded = load_store_settings(name, env, general)
        except StoreUnavailableError as broken:
            states.append(BackendState(name, True, "broken", error=str(broken)))
            continue
        except IncompleteConfigurationError as incomplete:
            states.append(BackendState(name, True, "skipped", missing=incomplete.missing))
            continue
        except ConfigurationError as error:
            states.append(BackendState(name, True, "invalid", error=str(error)))
            decided = True
            continue
        states.append(BackendState(name, True, "chosen", settings=loaded))
        decided = True
    return states


def _variables(env: Mapping[str, str], names: tuple[str, ...]) -> dict[str, str]:
    seen: dict[str, str] = {}
    for name in names:
        value = env.get(name)
        if value is not None and name not in seen:
            seen[name] = masked_value(name, value)
    return seen


def cache_statistics() -> dict[str, object]:
    """This process's credential cache: size, counters and hit rate (never keys or values).

    A process that never made a request has an empty cache; then the runtime (and ``requests``
    with it) is not imported just to say so, which keeps ``info`` quick.
    """
    from dataclasses import asdict

    from .cache import CacheStats

    runtime = sys.modules.get(f"{__package__}.runtime")
    cache = getattr(runtime, "CACHE", None)
    counters = asdict(cache.stats if cache is not None else CacheStats())
    lookups = counters.get("hits", 0) + counters.get("misses", 0)
    return {
        "scope": "this process only: each process keeps its credentials in its own memory",
        "pid": os.getpid(),
        "entries": len(cache) if cache is not None else 0,
        **counters,
        "hit_rate": round(counters.get("hits", 0) / lookups, 3) if lookups else None,
    }


def install_command(store: type[SecretStore[Any]]) -> str:
    """What installs a store's SDK, e.g. ``pip install 'mlflow-secrets-auth[aws]'``."""
    return f"pip install '{store.sdk_install or store.sdk_module}'"


def backend_problem(name: str, missing: tuple[str, ...], install: str | None) -> str:
    """Everything that keeps an enabled backend from being used, in one sentence: missing
    variables and a missing SDK together, so that one round of fixes is enough."""
    if not missing:
        return f"{name} is enabled but its SDK is not installed: {install}"
    text = f"{name}: {' and '.join(missing)} not set"
    if install:
        text += f", and its SDK is not installed: {install}"
    return text


def collect_info(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Everything ``info`` shows, as JSON-ready data. ``ok`` is the exit status's basis.

    ``ok`` means installed and configured: the entry point is registered, a backend is chosen
    and its SDK is installed. Otherwise ``configuration.error`` says why.
    """
    from .clear_marker import CACHE_DIR_VARIABLE, MARKER
    from .modes import mode_in_effect, mode_source, mode_variable

    env = os.environ if environ is None else environ
    data: dict[str, object] = {
        "version": __version__,
        "python": platform.python_version(),
        "mlflow": distribution_version("mlflow", "mlflow-skinny"),
    }
    entry_points = registered_entry_points()
    data["entry_point"] = {
        "group": ENTRY_POINT_GROUP,
        "name": PROVIDER_NAME,
        "registered": bool(entry_points),
        "value": entry_points[0].value if entry_points else None,
    }
    data["mlflow_tracking_auth"] = env.get("MLFLOW_TRACKING_AUTH")

    configuration: dict[str, object] = {"backend": None, "error": None, "auth_mode": None}
    backends: list[dict[str, object]] = []
    general: GeneralSettings | None = None
    try:
        general = load_general(env)
    except ConfigurationError as error:
        configuration["error"] = str(error)
    states = backend_states(env, general) if general is not None else []
    by_name = {state.name: state for state in states}
    chosen: BackendState | None = None
    sdk_ok = False
    unusable: list[str] = []
    for store in installed_stores():
        name = store.name
        state = by_name.get(name)
        enabled = bool(state and state.enabled)
        entry: dict[str, object] = {
            "name": name,
            "package": store.distribution,
            "package_version": store.version,
            "enabled": enabled,
            "state": state.state if state else "unknown",
        }
        if store.builtin or enabled:  # a third-party store is imported only once enabled
            try:
                store_class = load_store(name)
            except StoreUnavailableError as broken:
                entry["state"], entry["error"] = "broken", str(broken)
            else:
                sdk = store_class.sdk_module
                entry["sdk"] = sdk
                entry["sdk_installed"] = sdk_installed(sdk) if sdk else True
                install = None if entry["sdk_installed"] else install_command(store_class)
                if enabled and install:
                    entry["install"] = install
                if state is not None and state.state == "chosen":
                    sdk_ok = bool(entry["sdk_installed"])
                    if not sdk_ok:
                        unusable.append(backend_problem(name, (), install))
                if state is not None and state.state == "skipped":
                    unusable.append(backend_problem(name, state.missing, install))
        if state is not None and state.missing:
            entry["missing"] = list(state.missing)
        if state is not None and state.error:
            entry["error"] = state.error
            configuration["error"] = state.error
        if state is not None and state.state == "chosen":
            chosen = state
        backends.append(entry)
    usable = chosen is not None and sdk_ok
    configuration["backend"] = chosen.name if usable and chosen is not None else None
    if chosen is not None and chosen.settings is not None:
        mode = chosen.settings.auth_mode
        configuration["auth_mode"] = {
            "mode": mode,
            "variable": mode_variable(chosen.name),
            "source": mode_source(env, chosen.name),
            "in_effect": mode_in_effect(env, chosen.name, mode),
        }
    if general is not None and not general.enabled:
        configuration["error"] = (
            "no secrets backend is enabled: set MLFLOW_SECRETS_AUTH_ENABLE (one of "
            f"{', '.join(store_names())})"
        )
    elif chosen is not None and not usable:
        configuration["error"] = unusable[-1]  # the chosen one's SDK; skipped ones are listed
    elif general is not None and chosen is None and configuration["error"] is None:
        configuration["error"] = "no enabled backend is fully configured: " + "; ".join(unusable)
    data["backends"] = backends
    data["configuration"] = configuration

    # The built-in stores' variables always (a typo'd enable list is a common mistake), plus
    # those of any enabled third-party store.
    listed = tuple(dict.fromkeys((*BUILTIN_ORDER, *(general.enabled if general else ()))))
    variables = data["variables"] = _variables(env, (*known_variables(listed), CACHE_DIR_VARIABLE))
    mlflow_variables = data["mlflow_variables"] = _variables(env, MLFLOW_VARIABLES)

    hosts: dict[str, object] = {}
    if general is not None:
        from .hosts import default_rules

        if general.allowed_hosts is not None:
            rules = general.allowed_hosts
            hosts["source"] = "MLFLOW_SECRETS_ALLOWED_HOSTS"
        else:
            tracking, registry = env.get("MLFLOW_TRACKING_URI"), env.get("MLFLOW_REGISTRY_URI")
            rules = default_rules(tracking, registry)
            hosts["source"] = (
                "the MLflow tracking/registry URI hosts (MLFLOW_SECRETS_ALLOWED_HOSTS is unset)"
            )
        hosts["allowed_hosts"] = [str(rule) for rule in rules]
        hosts["allow_http"] = general.allow_http
        hosts["header"] = general.header_name or "Authorization"
    data["hosts"] = hosts

    profiles = data["profiles"] = profile_summary(env, general)
    file_profiles = [p for p in profiles["profiles"] if p["defined"] != "environment"]
    if file_profiles and not profiles["error"]:
        usable = True  # the file configures the plugin even where the environment does not

    data["cache"] = cache_statistics()
    data["clear_marker"] = MARKER.status()

    data["ok"] = bool(entry_points) and usable and not profiles["error"]
    logger.debug(
        "Info: backend=%s, variables seen=%d, entry point registered=%s",
        configuration["backend"],
        len(variables) + len(mlflow_variables),
        bool(entry_points),
    )
    return data


def profile_summary(env: Mapping[str, str], general: GeneralSettings | None) -> dict[str, Any]:
    """The configuration file's profiles (SPEC §11): name, hosts, store, where defined."""
    from .profiles import ProfileFile, config_path, load_profiles

    path = config_path(env)
    summary: dict[str, Any] = {"file": str(path), "profiles": [], "error": None}
    if general is None:
        return summary
    try:
        profiles = load_profiles(env, general, source=ProfileFile())
    except ConfigurationError as error:
        summary["error"] = str(error)
        return summary
    summary["restricted_to"] = profiles.restricted_to
    summary["profiles"] = [
        {
            "name": p.name,
            "hosts": None if p.rules is None else [str(rule) for rule in p.rules],
            "backend": p.backend,
            "describe": p.settings.describe(),
            "defined": p.origin_text,
        }
        for p in profiles.profiles
    ]
    return summary
