"""Steps 2-4: backend reachable, login and secret read, from one bounded fetch.

One fetch answers all three; a failure says which step broke and marks the later credential
steps skipped, so the first failure is the one to fix. A successful read hands on to the
format and header checks.
"""

from __future__ import annotations

import time
from dataclasses import replace

from ..backends.vault_settings import VaultSettings
from ..errors import BackendError
from ..settings import BackendSettings
from .describe import _login_passed, _secret_name, _target
from .model import Check, _bounded, _Overtime, _Run, _why, logger
from .secret_checks import _auth_header, _secret_format
from .vault_token import TokenStatus, describe_token, token_status

_CHAIN_TITLES = (
    ("backend_reachable", "Backend reachable"),
    ("login", "Login"),
    ("secret_read", "Secret read"),
    ("secret_format", "Secret format"),
    ("auth_header", "Auth header built"),
)


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
    token = _token_status(run, settings)
    if token is not None and token.state == "valid":
        assert isinstance(settings, VaultSettings)
        login = f"{_token_name(settings)} is valid ({describe_token(token)})"
    else:
        login = _login_passed(settings)
    run.add(Check("login", "Login", "passed", login))
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
    run.guarded("store_advice", "Store advice", lambda: _advice(run))


def _advice(run: _Run) -> None:
    """What the store itself warns about (e.g. a secret file that others may read)."""
    advice = getattr(run.backend, "advice", None)
    for item in advice() if callable(advice) else ():
        run.add(Check("store_advice", "Store advice", "warning", item.detail, item.fix))


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
    token = _token_status(run, settings)
    if token is not None and token.state == "invalid":
        assert isinstance(settings, VaultSettings)
        run.add(_invalid_token(settings))
        _skip_rest(run, ("secret_read",), "the login failed")
        return
    if step == "login" and token is not None and token.state == "valid" and token.ttl is None:
        # Vault knows the token (it answers its mount listing) but would not let it look
        # itself up: the refusal came from the read, which its policies do not allow.
        assert isinstance(settings, VaultSettings)
        failed = Check(
            "secret_read",
            "Secret read",
            "failed",
            f"read failed: permission denied reading {settings.secret_path}: the token is valid "
            "but its policies do not grant read on this path",
            "a policy on the token that grants read on the secret (for KV v2 on "
            "<mount>/data/<path>), or MLFLOW_VAULT_SECRET_PATH if the path is wrong",
        )
    elif step == "login":
        run.add(failed)
        _skip_rest(run, ("secret_read",), "the login failed")
        return
    if token is not None and token.state == "valid":
        assert isinstance(settings, VaultSettings)
        login = f"{_token_name(settings)} is valid ({describe_token(token)})"
        if token.policies and "permission denied" in error.detail:
            policies = ", ".join(token.policies)
            failed = replace(failed, fix=f"{failed.fix} (the token's policies: {policies})")
    else:
        login = _login_passed(settings)
    run.add(Check("login", "Login", "passed", login))
    run.add(failed)
    _skip_rest(run, (), "the secret could not be read")


def _token_name(settings: VaultSettings) -> str:
    origin = settings.token_origin
    return origin if origin == "VAULT_TOKEN" else f"the token in {origin}"


def _invalid_token(settings: VaultSettings) -> Check:
    from ..backends.vault_login import user_token_fix  # imports hvac: only for Vault

    return Check(
        "login",
        "Login",
        "failed",
        f"{_token_name(settings)} is invalid or expired: Vault refused it when asked to look it "
        "up (auth/token/lookup-self), and refused the secret read for the same reason",
        user_token_fix(settings),
    )


def _token_status(run: _Run, settings: BackendSettings) -> TokenStatus | None:
    """For Vault token login, what Vault says of the token itself; None for other logins."""
    if not isinstance(settings, VaultSettings) or settings.login_method != "token":
        return None
    assert run.general is not None
    try:
        return _bounded(lambda: token_status(settings), run.general.timeout_sec + 1)
    except Exception as error:  # the type only; the Login check then judges by the read
        logger.debug("Doctor: the Vault token lookup raised %s", type(error).__name__)
        return None
