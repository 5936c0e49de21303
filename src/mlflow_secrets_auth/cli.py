"""The ``mlflow-secrets-auth`` command line. Output goes to stdout; logs go to stderr.

The commands only render what :mod:`.doctor`, :mod:`.info` and :mod:`.clear_marker` compute;
those modules do the work and never print. Heavier modules are imported inside the commands so
that ``--help`` and ``--version`` stay instant.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from . import __version__
from .log import (
    LOG_LEVEL_VARIABLE,
    ROOT_LOGGER_NAME,
    StderrHandler,
    configure_from_env,
    get_logger,
)

logger = get_logger(__name__)
F = TypeVar("F", bound=Callable[..., Any])

_SYMBOLS = {"passed": "✓", "failed": "✗", "warning": "!", "skipped": "-"}
_ASCII_SYMBOLS = {"passed": "+", "failed": "x", "warning": "!", "skipped": "-"}


def _log_to_stderr() -> None:
    """The CLI is the application: with MLFLOW_SECRETS_LOG_LEVEL set, its records go to stderr.

    The handler is the CLI's own, so the library's stderr fallback stays silent (no line twice).
    """
    configure_from_env()
    logger = logging.getLogger(ROOT_LOGGER_NAME)
    for handler in [h for h in logger.handlers if type(h) is StderrHandler]:
        logger.removeHandler(handler)  # from an earlier invocation in the same process
    if not (os.environ.get(LOG_LEVEL_VARIABLE) or "").strip():
        return
    if logger.level != logging.NOTSET:
        logger.addHandler(StderrHandler())


def _stdout_closed() -> None:
    """The reader went away (``| head -1``): send the rest of the output nowhere, quietly.

    Pointing file descriptor 1 at /dev/null also lets the interpreter's final flush succeed,
    which would otherwise print "Exception ignored … BrokenPipeError" and exit 120.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process


def _out(text: str = "") -> None:
    """Print one line to stdout; a closed pipe ends the output, not the command."""
    try:
        click.echo(text)
    except BrokenPipeError:
        _stdout_closed()


def _no_traceback(command: F) -> F:
    """A last line of defence: an unexpected error becomes one clear line, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:  # output the command did not route through _out
            _stdout_closed()
            raise SystemExit(1) from None
        except Exception as error:  # the type only: the text might quote something secret
            logger.debug("Command failed with %s", type(error).__name__)
            click.echo(
                f"mlflow-secrets-auth: unexpected error ({type(error).__name__}); run with "
                f"{LOG_LEVEL_VARIABLE}=DEBUG for details, and report it",
                err=True,
            )
            raise SystemExit(1) from None

    return wrapper  # type: ignore[return-value]


def _symbols() -> dict[str, str]:
    """✓/✗ where stdout can encode them, ASCII otherwise (a C locale, a legacy console)."""
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        "".join(_SYMBOLS.values()).encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return _ASCII_SYMBOLS
    return _SYMBOLS


def _emit_json(data: object) -> None:
    _out(json.dumps(data, indent=2, sort_keys=False))


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Activate the plugin for MLflow with MLFLOW_TRACKING_AUTH=mlflow_secrets_auth and "
        "choose a backend with MLFLOW_SECRETS_AUTH_ENABLE (vault, aws-secrets-manager, "
        f"azure-key-vault). Set {LOG_LEVEL_VARIABLE}=DEBUG to see each step on stderr."
    ),
)
@click.version_option(__version__, "-V", "--version", prog_name="mlflow-secrets-auth")
def main() -> None:
    """Authenticate MLflow with credentials from Vault, AWS Secrets Manager or Azure Key Vault.

    Diagnose and inspect the plugin's configuration from the command line.

    \b
    Examples:
      mlflow-secrets-auth info
      mlflow-secrets-auth doctor
      mlflow-secrets-auth doctor --dry-run https://mlflow.example.com
      mlflow-secrets-auth cache clear
    """
    _log_to_stderr()


# -- info ---------------------------------------------------------------------------------------


@main.command(short_help="Show what is installed and configured (secrets masked).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.pass_context
@_no_traceback
def info(ctx: click.Context, as_json: bool) -> None:
    """Show the installation and the configuration this shell passes to the plugin.

    Prints the version, each backend (enabled or not, SDK installed or not, chosen or skipped
    and why), every plugin variable this process sees with secret values masked as ***, where
    credentials may be sent (the allowlist), and the cache statistics. Nothing is contacted.

    Exits 0 when the plugin is installed and configured (a backend is chosen and its SDK is
    installed), 1 otherwise.

    \b
    Examples:
      mlflow-secrets-auth info
      mlflow-secrets-auth info --json | jq .variables
    """
    from .info import collect_info

    data = collect_info()
    if as_json:
        _emit_json(data)
    else:
        _print_info(data)
    ctx.exit(0 if data["ok"] else 1)


def _print_info(data: dict[str, Any]) -> None:
    echo = _out
    echo(
        f"mlflow-secrets-auth {data['version']} (Python {data['python']}, "
        f"{'MLflow ' + data['mlflow'] if data['mlflow'] else 'MLflow not installed'})"
    )
    entry = data["entry_point"]
    echo(
        f"Entry point: {entry['name']} in {entry['group']}: "
        f"{'registered' if entry['registered'] else 'NOT registered (reinstall the package)'}"
    )
    tracking_auth = data["mlflow_tracking_auth"]
    if tracking_auth == entry["name"]:
        echo(f"MLFLOW_TRACKING_AUTH={tracking_auth}: MLflow calls the plugin")
    else:
        state = "is not set" if tracking_auth is None else f"is {tracking_auth!r}"
        echo(
            f"MLFLOW_TRACKING_AUTH {state}: MLflow will not call the plugin; "
            f"export MLFLOW_TRACKING_AUTH={entry['name']}"
        )
    echo("")
    echo("Backends (priority order):")
    for backend in data["backends"]:
        line = f"  {backend['name']:<20} {backend['state']:<10}"
        if backend.get("sdk"):
            sdk = "installed" if backend["sdk_installed"] else "NOT installed"
            line += f" SDK {backend['sdk']}: {sdk}"
        if not (backend.get("package") or "").startswith("mlflow-secrets-auth"):
            line += f" (package {backend.get('package')} {backend.get('package_version')})"
        if backend.get("error"):
            line = f"{line.rstrip()}: {backend['error']}"
        if backend.get("missing"):
            line += f"; missing {' and '.join(backend['missing'])}"
        if backend.get("install"):
            line += f"; {backend['install']}"
        echo(line)
    configuration = data["configuration"]
    if configuration["backend"]:
        echo(f"Configuration: {configuration['backend']} is used")
    else:
        echo(f"Configuration: not usable: {configuration['error']}")
    if configuration.get("auth_mode"):
        echo(f"Auth mode: {configuration['auth_mode']['in_effect']}")
    echo("")
    echo("Variables seen by this process (secrets masked):")
    seen = {**data["variables"], **data["mlflow_variables"]}
    if not seen:
        echo("  none: no plugin or MLflow variable is set in this environment")
    for name, value in seen.items():
        shown = f"{value} (set)" if value == "***" else value
        echo(f"  {name}={shown}")
    echo("")
    hosts = data["hosts"]
    if hosts:
        echo(_allowed_hosts_line(hosts))
        echo(
            "Plain http to non-loopback hosts: "
            + ("allowed" if hosts["allow_http"] else "not allowed (MLFLOW_SECRETS_ALLOW_HTTP)")
        )
        echo(f"Credential header: {hosts['header']}")
    _print_profiles(data["profiles"])
    echo(f"Cache ({data['cache']['scope']}): {_cache_line(data['cache'])}")
    _print_marker(data["clear_marker"])


def _print_profiles(summary: dict[str, Any]) -> None:
    echo = _out
    if summary["error"]:
        echo(f"Profiles: the configuration file is wrong: {summary['error']}")
        return
    profiles = summary["profiles"]
    if not any(p["defined"] != "environment" for p in profiles):
        echo(f"Profiles: none from {summary['file']} (the environment alone configures the plugin)")
        return
    echo(f"Profiles (from {summary['file']}, first match wins: exact host, then file order):")
    for p in profiles:
        hosts = ", ".join(p["hosts"]) if p["hosts"] is not None else "hosts no other profile names"
        echo(f"  {p['name']:<12} {p['backend']:<20} {hosts}  ({p['defined']})")


def _allowed_hosts_line(hosts: dict[str, Any]) -> str:
    allowed = ", ".join(hosts["allowed_hosts"])
    if hosts["source"] == "MLFLOW_SECRETS_ALLOWED_HOSTS":
        return f"Allowed hosts: {allowed or 'none'} (MLFLOW_SECRETS_ALLOWED_HOSTS)"
    if allowed:
        return (
            f"Allowed hosts: {allowed}, from MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI "
            "(MLFLOW_SECRETS_ALLOWED_HOSTS is unset)"
        )
    return (
        "Allowed hosts: none: MLFLOW_SECRETS_ALLOWED_HOSTS is unset and no "
        "MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI names a server"
    )


def _cache_line(cache: dict[str, Any]) -> str:
    rate = "n/a" if cache["hit_rate"] is None else f"{cache['hit_rate']:.0%}"
    skip = {"scope", "pid", "entries", "hit_rate"}
    counters = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cache.items() if k not in skip)
    return f"{cache['entries']} cached credential(s), hit rate {rate} ({counters})"


def _print_marker(marker: dict[str, Any]) -> None:
    if marker["exists"]:
        _out(
            f"Clear marker: {marker['path']}: last clear requested {marker['requested_at']} "
            f"(generation {marker['generation']}, file changed {marker['changed_at']})"
        )
    else:
        _out(f"Clear marker: {marker['path']}: no clear requested yet")
    if marker.get("error"):
        _out(f"  note: {marker['error']}")


# -- doctor -------------------------------------------------------------------------------------


_FROM_TRACKING_URI = "\0tracking-uri"  # `--dry-run` given without a URL


def _dry_run_url(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from .doctor import dry_run_url_problem

    if value is None:
        return None
    if value == _FROM_TRACKING_URI:
        tracking = (os.environ.get("MLFLOW_TRACKING_URI") or "").strip()
        if not tracking:
            raise click.BadParameter(
                "without a URL it sends the request to MLFLOW_TRACKING_URI, which is not set: "
                "pass the MLflow server's URL (--dry-run https://mlflow.example.com) or export "
                "MLFLOW_TRACKING_URI"
            )
        problem = dry_run_url_problem(tracking)
        if problem is not None:
            raise click.BadParameter(f"without a URL it uses MLFLOW_TRACKING_URI, but {problem}")
        return tracking
    problem = dry_run_url_problem(value)
    if problem is not None:
        raise click.BadParameter(problem)
    return value


@main.command(short_help="Check each step from configuration to an MLflow request.")
@click.option(
    "--dry-run",
    "dry_run_url",
    metavar="[URL]",
    is_flag=False,
    flag_value=_FROM_TRACKING_URI,
    callback=_dry_run_url,
    help="Also send one real request (GET /api/2.0/mlflow/experiments/search?max_results=1) "
    "with the plugin's credential to the MLflow server at URL (default: MLFLOW_TRACKING_URI).",
)
@click.option(
    "--profile",
    "profile",
    metavar="NAME",
    help="Check only this profile of the configuration file (default: every profile; with "
    "--dry-run, the profile that serves the URL).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@click.pass_context
@_no_traceback
def doctor(ctx: click.Context, dry_run_url: str | None, profile: str | None, as_json: bool) -> None:
    """Check every step from configuration to an authenticated MLflow request.

    \b
    Checks, in order (a failed step skips the ones that depend on it):
      configuration      which backend is chosen; which are skipped and why
      backend reachable  network, DNS, TLS, time limit
      login              the secret store accepts this process's identity
      secret read        the secret exists and may be read
      secret format      its shape and the auth mode in effect (auto, bearer or basic)
      auth header        the header the plugin would send (never the value)
      MLflow activation  MLFLOW_TRACKING_AUTH, entry point, overriding settings, allowed hosts
      dry run            with --dry-run: one real request to the MLflow server

    Each check is printed as ✓ passed, ✗ failed, ! warning or - skipped, with the reason and,
    for problems, the fix. No secret value is ever printed. Exits 0 when no check failed
    (warnings do not fail), 1 otherwise, 2 for a usage error.

    \b
    Examples:
      mlflow-secrets-auth doctor
      mlflow-secrets-auth doctor --dry-run https://mlflow.example.com
      mlflow-secrets-auth doctor --dry-run        # the server at MLFLOW_TRACKING_URI
      MLFLOW_SECRETS_LOG_LEVEL=DEBUG mlflow-secrets-auth doctor
      mlflow-secrets-auth doctor --profile prod
      mlflow-secrets-auth doctor --json > doctor.json

    With a configuration file of profiles (MLFLOW_SECRETS_CONFIG), the credential checks run
    for each profile and name it; --dry-run picks the profile that serves the URL.
    """
    from .doctor import doctor_ok, run_doctor, summarize

    checks = run_doctor(os.environ, dry_run_url, profile)
    ok = doctor_ok(checks)
    counts = summarize(checks)
    if as_json:
        _emit_json(
            {
                "version": __version__,
                "ok": ok,
                "dry_run_url": dry_run_url,
                "summary": counts,
                "checks": [check.as_dict() for check in checks],
            }
        )
    else:
        symbols = _symbols()
        _out(f"mlflow-secrets-auth {__version__} doctor")
        for check in checks:
            where = f"[{check.profile}] " if check.profile else ""
            _out(f"{symbols[check.status]} {where}{check.title}: {check.detail}")
            if check.fix and check.status in ("failed", "warning"):
                _out(f"    fix: {check.fix}")
        verdict = "OK" if ok else "FAILED"
        _out(
            f"{verdict}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['warning']} warning(s), {counts['skipped']} skipped"
        )
    ctx.exit(0 if ok else 1)


# -- cache --------------------------------------------------------------------------------------


@main.group()
def cache() -> None:
    """Clear or inspect cached credentials across processes.

    Every process keeps its credentials in memory only; `cache clear` reaches all of them
    through a marker file (it holds a random id, never a secret) in a per-user directory:
    $MLFLOW_SECRETS_CACHE_DIR, else $XDG_CACHE_HOME/mlflow-secrets-auth, else
    ~/.cache/mlflow-secrets-auth.

    \b
    Examples:
      mlflow-secrets-auth cache clear
      mlflow-secrets-auth cache status --json
    """


@cache.command("clear")
@click.pass_context
@_no_traceback
def cache_clear(ctx: click.Context) -> None:
    """Make every process using the plugin drop its cached credentials.

    Rewrites the clear marker with a fresh random id; each process on this machine that uses
    the plugin (as this user, with the same cache directory) sees the change before its next
    request and fetches the credential again. Use it after rotating a secret.

    \b
    Example:
      mlflow-secrets-auth cache clear
    """
    from .clear_marker import MARKER
    from .runtime import CACHE

    try:
        generation = MARKER.request_clear()
    except OSError as error:
        click.echo(
            f"mlflow-secrets-auth: cannot write the clear marker in {MARKER.directory}: "
            f"{error.strerror or type(error).__name__}. Check the directory's permissions, or "
            "set MLFLOW_SECRETS_CACHE_DIR to a writable directory",
            err=True,
        )
        ctx.exit(1)
    CACHE.clear()
    _out(f"Cache clear requested (generation {generation}).")
    _out(
        "Every process using the plugin with this cache directory drops its cached "
        "credentials before its next request."
    )
    _out(f"Marker: {MARKER.path}")


@cache.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of text.")
@_no_traceback
def cache_status(as_json: bool) -> None:
    """Show the clear marker and this process's cache.

    The marker tells when a clear was last requested. The cache figures are this command's
    own process (each process keeps its credentials in its own memory, so a long-running
    MLflow job has its own).

    \b
    Examples:
      mlflow-secrets-auth cache status
      mlflow-secrets-auth cache status --json
    """
    from .clear_marker import MARKER
    from .info import cache_statistics

    marker = MARKER.status()
    process = cache_statistics()
    if as_json:
        _emit_json({"marker": marker, "this_process": process})
        return
    _print_marker(marker)
    _out(f"This process (pid {process['pid']}): {_cache_line(process)}")


if __name__ == "__main__":  # pragma: no cover
    main()
