"""Step 7: will MLflow call the plugin here, and send its credential where it should?

Tracking auth, the entry point, settings that override or bypass the plugin, and the
allowlist: each is independent of the credential chain and runs even when it failed.
"""

from __future__ import annotations

import importlib.metadata
from urllib.parse import urlsplit

from ..errors import HostNotAllowedError
from ..hosts import ALLOWED_HOSTS_VARIABLE
from ..info import ENTRY_POINT_GROUP, PROVIDER_NAME, registered_entry_points
from .model import Check, Status, _Run
from .policy import _not_allowed_fix, _policy

_TRACKING_TITLE = "MLflow activation: provider"


def _joined(check_id: str, title: str, findings: list[tuple[str, str]], *, failed: bool) -> Check:
    """One check from several (detail, fix) findings: failed, or only a warning."""
    status: Status = "failed" if failed else "warning"
    return Check(
        check_id,
        title,
        status,
        "; ".join(detail for detail, _ in findings),
        "; ".join(fix for _, fix in findings),
    )


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
    run.add(_joined("overrides", title, findings, failed=bool(failed)))


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
    hosts = ",".join(map(str, rules))
    if general.allowed_hosts is not None:
        source = f"{ALLOWED_HOSTS_VARIABLE}={hosts}"
    elif hosts:
        source = f"{ALLOWED_HOSTS_VARIABLE} unset, so the tracking/registry host(s) {hosts}"
    else:
        source = f"{ALLOWED_HOSTS_VARIABLE} unset, so no host at all"
    tracking = run.env.get("MLFLOW_TRACKING_URI")
    if not tracking:
        run.add(
            Check(
                "allowlist",
                title,
                "warning",
                "MLFLOW_TRACKING_URI is not set here: unless the code calls "
                "mlflow.set_tracking_uri(), MLflow uses a local store and sends no requests the "
                f"plugin could authenticate; allowlist: {source}",
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
        run.add(_joined("allowlist", title, problems, failed=bool(failed)))
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
