"""The command line (SPEC §9) without any server: help, exit codes, JSON shape, masking, the
activation checks, and the cache-clear marker (including a real second process)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from mlflow_secrets_auth.clear_marker import (
    DEFAULT_POLL_INTERVAL,
    MARKER_NAME,
    ClearMarker,
    marker_directory,
)
from mlflow_secrets_auth.cli import main
from mlflow_secrets_auth.doctor import Check, run_doctor
from mlflow_secrets_auth.info import is_secret_variable, masked_value

from support.doctor_order import CHECK_ORDER


@pytest.fixture(autouse=True)
def private_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the developer's ~/.cache: every test gets its own marker directory."""
    directory = tmp_path / "marker-dir"
    monkeypatch.setenv("MLFLOW_SECRETS_CACHE_DIR", str(directory))
    return directory


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def by_id(checks: list[Check]) -> dict[str, Check]:
    return {check.id: check for check in checks}


# -- help and version ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], ["info", "doctor", "cache", "MLFLOW_TRACKING_AUTH=mlflow_secrets_auth"]),
        (["info"], ["masked", "Exits 0", "mlflow-secrets-auth info"]),
        (
            ["doctor"],
            ["--dry-run [URL]", "MLFLOW_TRACKING_URI", "secret format", "Exits 0", "usage error"],
        ),
        (["cache"], ["clear", "status", "MLFLOW_SECRETS_CACHE_DIR"]),
        (["cache", "clear"], ["drop its cached credentials", "mlflow-secrets-auth cache clear"]),
        (["cache", "status"], ["marker", "mlflow-secrets-auth cache status"]),
    ],
)
def test_every_command_explains_itself_with_an_example(
    args: list[str], expected: list[str]
) -> None:
    result = invoke(*args, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout
    for text in expected:
        assert text in result.stdout, text


def test_version() -> None:
    import mlflow_secrets_auth

    result = invoke("--version")
    assert result.exit_code == 0
    assert mlflow_secrets_auth.__version__ in result.stdout


# -- doctor: nothing configured -----------------------------------------------------------------


def test_doctor_with_nothing_enabled_fails_with_the_enable_fix() -> None:
    result = invoke("doctor")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[1].startswith("✗ Configuration: no secrets backend is enabled")
    assert lines[2].startswith("    fix: set MLFLOW_SECRETS_AUTH_ENABLE=vault")
    for title in ("Backend reachable", "Login", "Secret read", "Secret format", "Auth header"):
        assert any(
            line.startswith(f"- {title}") and "not run because no backend is enabled" in line
            for line in lines
        ), title
    assert lines[-1].startswith("FAILED: ")
    assert "Traceback" not in result.output


def test_doctor_json_is_one_document_with_every_check() -> None:
    result = invoke("doctor", "--json")
    assert result.exit_code == 1
    document = json.loads(result.stdout)  # the whole of stdout: nothing else is printed there
    assert set(document) == {"version", "ok", "dry_run_url", "summary", "checks"}
    assert document["ok"] is False
    assert [c["id"] for c in document["checks"]] == CHECK_ORDER
    for check in document["checks"]:
        assert set(check) == {"id", "title", "status", "detail", "fix", "profile"}
        assert check["profile"] is None  # the environment alone: no profiles
        assert check["status"] in {"passed", "failed", "warning", "skipped"}
    counts = document["summary"]
    assert sum(counts.values()) == len(document["checks"])
    assert counts["failed"] == sum(c["status"] == "failed" for c in document["checks"])
    first = document["checks"][0]
    assert first["status"] == "failed"
    assert first["fix"].startswith("set MLFLOW_SECRETS_AUTH_ENABLE=")


def test_debug_logs_go_to_stderr_and_json_stays_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_LOG_LEVEL", "DEBUG")
    result = invoke("doctor", "--json")
    json.loads(result.stdout)
    assert "DEBUG: Doctor check configuration: failed" in result.stderr
    assert "DEBUG" not in result.stdout
    # A second run in the same process logs to the new stderr (no stale stream, no duplicates).
    again = invoke("doctor", "--json")
    assert again.stderr.count("Doctor check configuration") == 1


def test_incomplete_configuration_names_the_missing_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "vault, aws-secrets-manager")
    monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200")
    check = by_id(run_doctor(os.environ))["configuration"]
    assert check.status == "failed"
    assert "vault skipped: MLFLOW_VAULT_SECRET_PATH and VAULT_TOKEN" in check.detail
    assert "aws-secrets-manager skipped: MLFLOW_AWS_SECRET_NAME" in check.detail
    assert check.fix.startswith("set MLFLOW_VAULT_SECRET_PATH and VAULT_TOKEN")


def test_a_skipped_backend_is_a_warning_naming_what_it_lacks() -> None:
    env = {
        "MLFLOW_SECRETS_AUTH_ENABLE": "vault,aws-secrets-manager",
        "VAULT_ADDR": "http://127.0.0.1:1",
        "MLFLOW_AWS_SECRET_NAME": "team/mlflow",
        "AWS_REGION": "eu-west-1",
    }
    check = by_id(run_doctor(env))["configuration"]
    assert check.status == "warning"
    assert check.detail.startswith("aws-secrets-manager chosen: AWS Secrets Manager secret")
    assert "vault skipped: MLFLOW_VAULT_SECRET_PATH and VAULT_TOKEN" in check.detail
    assert "MLFLOW_SECRETS_AUTH_ENABLE" in check.fix


def test_a_malformed_value_is_reported_with_its_variable() -> None:
    env = {"MLFLOW_SECRETS_AUTH_ENABLE": "vault", "MLFLOW_SECRETS_TIMEOUT_SEC": "soon"}
    check = by_id(run_doctor(env))["configuration"]
    assert check.status == "failed"
    assert "MLFLOW_SECRETS_TIMEOUT_SEC is not a valid number" in check.detail
    assert "soon" not in check.detail
    assert check.fix == "correct MLFLOW_SECRETS_TIMEOUT_SEC"


@pytest.mark.parametrize(
    ("url", "shown", "hidden"),
    [
        ("not-a-url", "'not-a-url' is not an http(s) URL", None),
        ("ftp://mlflow.example", "is not an http(s) URL", None),
        ("https://bob:hunter2-pw@mlflow.example", "never put credentials in a URL", "hunter2"),
        ("https://mlflow.example:99999", "invalid port", None),
    ],
)
def test_a_bad_dry_run_url_is_a_clear_usage_error(url: str, shown: str, hidden: str | None) -> None:
    result = invoke("doctor", "--dry-run", url)
    assert result.exit_code == 2
    assert "Invalid value for '--dry-run'" in result.stderr
    assert shown in result.stderr
    assert "Traceback" not in result.output
    if hidden:
        assert hidden not in result.output


def test_dry_run_is_skipped_without_a_credential() -> None:
    checks = by_id(run_doctor({}, "https://mlflow.example"))
    assert checks["dry_run"].status == "skipped"
    assert checks["dry_run"].detail == "not run because no backend is enabled"


# -- doctor: MLflow activation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "status", "words"),
    [
        (None, "failed", "is not set"),
        ("mlflow_secrets_auth", "passed", "MLFLOW_TRACKING_AUTH=mlflow_secrets_auth"),
        ("mlflow_secrets_auth ", "failed", "surrounding white space"),
        ("kubernetes", "failed", "selects another provider"),
    ],
)
def test_tracking_auth_must_name_the_plugin(value: str | None, status: str, words: str) -> None:
    env = {} if value is None else {"MLFLOW_TRACKING_AUTH": value}
    check = by_id(run_doctor(env))["tracking_auth"]
    assert check.status == status
    assert words in check.detail
    if status == "failed":
        assert check.fix == "export MLFLOW_TRACKING_AUTH=mlflow_secrets_auth"


def test_entry_point_is_registered_and_loadable() -> None:
    check = by_id(run_doctor({}))["entry_point"]
    assert check.status == "passed"
    assert "mlflow_secrets_auth:SecretsAuthProviderFactory" in check.detail


@pytest.mark.parametrize(
    ("env", "status", "words"),
    [
        ({}, "passed", "nothing overrides"),
        ({"MLFLOW_TRACKING_AWS_SIGV4": "true"}, "failed", "bypassed entirely"),
        ({"MLFLOW_TRACKING_AWS_SIGV4": "TRUE"}, "failed", "bypassed entirely"),
        ({"MLFLOW_TRACKING_AWS_SIGV4": "false"}, "passed", "nothing overrides"),
        ({"MLFLOW_TRACKING_AWS_SIGV4": "maybe"}, "failed", "not a value MLflow accepts"),
        ({"MLFLOW_TRACKING_TOKEN": "old-token-1234"}, "warning", "plugin's header replaces it"),
        (
            {"MLFLOW_TRACKING_USERNAME": "u", "MLFLOW_TRACKING_PASSWORD": "pw-123456"},
            "warning",
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD are set",
        ),
        (
            {"MLFLOW_TRACKING_TOKEN": "old-token-1234", "MLFLOW_AUTH_HEADER_NAME": "X-Api-Key"},
            "warning",
            "next to the plugin's X-Api-Key header",
        ),
    ],
)
def test_settings_that_override_or_bypass_the_plugin(
    env: dict[str, str], status: str, words: str
) -> None:
    check = by_id(run_doctor(env))["overrides"]
    assert check.status == status
    assert words in check.detail
    assert "old-token-1234" not in check.detail + check.fix
    assert "pw-123456" not in check.detail + check.fix


@pytest.mark.parametrize(
    ("env", "status", "words", "fix"),
    [
        ({}, "warning", "MLFLOW_TRACKING_URI is not set", "export MLFLOW_TRACKING_URI"),
        (
            {"MLFLOW_TRACKING_URI": "https://mlflow.example"},
            "passed",
            "credentials may go to mlflow.example:443 (MLFLOW_TRACKING_URI)",
            "",
        ),
        (
            {"MLFLOW_TRACKING_URI": "http://127.0.0.1:5000"},
            "passed",
            "credentials may go to 127.0.0.1:5000",
            "",
        ),
        (
            {"MLFLOW_TRACKING_URI": "http://mlflow.example"},
            "failed",
            "plain http",
            "MLFLOW_SECRETS_ALLOW_HTTP=true",
        ),
        (
            {"MLFLOW_TRACKING_URI": "http://mlflow.example", "MLFLOW_SECRETS_ALLOW_HTTP": "true"},
            "passed",
            "credentials may go to mlflow.example:80",
            "",
        ),
        (
            {
                "MLFLOW_TRACKING_URI": "https://mlflow.example",
                "MLFLOW_SECRETS_ALLOWED_HOSTS": "*.corp.example",
            },
            "failed",
            "Host not allowed: mlflow.example:443",
            "add mlflow.example to MLFLOW_SECRETS_ALLOWED_HOSTS",
        ),
        (
            {"MLFLOW_TRACKING_URI": "https://mlflow.example", "MLFLOW_SECRETS_ALLOWED_HOSTS": "*"},
            "warning",
            "sends the credential to any host",
            "instead of '*'",
        ),
        (
            {"MLFLOW_TRACKING_URI": "sqlite:///mlflow.db"},
            "warning",
            "not an HTTP server",
            "http(s) URL",
        ),
    ],
)
def test_allowlist_covers_the_tracking_uri(
    env: dict[str, str], status: str, words: str, fix: str
) -> None:
    check = by_id(run_doctor(env))["allowlist"]
    assert check.status == status, check
    assert words in check.detail
    assert fix in check.fix


def test_dry_run_to_a_host_that_is_not_allowed_names_the_variable() -> None:
    from mlflow_secrets_auth.doctor import _not_allowed_fix, _policy, _Run
    from mlflow_secrets_auth.settings import load_general

    run = _Run({"MLFLOW_TRACKING_URI": "https://mlflow.example"})
    general = load_general(run.env)
    fix = _not_allowed_fix(general, _policy(run, general), "https://other.example/api")
    assert fix == (
        "set MLFLOW_TRACKING_URI to this server, or add other.example to "
        "MLFLOW_SECRETS_ALLOWED_HOSTS"
    )


# -- info ---------------------------------------------------------------------------------------


def test_info_with_nothing_enabled_exits_1() -> None:
    result = invoke("info")
    assert result.exit_code == 1
    assert "no secrets backend is enabled" in result.stdout
    assert "vault                disabled" in result.stdout
    assert "Traceback" not in result.output


SECRET_VALUES = {
    "VAULT_TOKEN": "hvs.vault-token-value-1",
    "VAULT_SECRET_ID": "approle-secret-id-2",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-key-3",
    "AWS_SESSION_TOKEN": "aws-session-token-4",
    "AZURE_CLIENT_SECRET": "azure-client-secret-5",
    "IDENTITY_HEADER": "identity-header-6",
    "MSI_SECRET": "msi-secret-7",
    "MLFLOW_TRACKING_PASSWORD": "tracking-password-8",
    "MLFLOW_TRACKING_TOKEN": "tracking-token-9",
}


def configure_vault(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "vault")
    monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200")
    monkeypatch.setenv("MLFLOW_VAULT_SECRET_PATH", "secret/mlflow/auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://ml:uri-password-10@mlflow.example")
    for name, value in SECRET_VALUES.items():
        monkeypatch.setenv(name, value)


def test_info_configured_exits_0_and_masks_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_vault(monkeypatch)
    result = invoke("info")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for name, value in SECRET_VALUES.items():
        assert f"{name}=*** (set)" in out
        assert value not in result.output
    assert "uri-password-10" not in result.output
    assert "MLFLOW_TRACKING_URI=https://ml:***@mlflow.example" in out
    # Where the secret lives is not a secret, and is what a user needs to check.
    assert "MLFLOW_VAULT_SECRET_PATH=secret/mlflow/auth" in out
    assert "VAULT_ADDR=https://vault.example:8200" in out
    assert "MLFLOW_SECRETS_AUTH_ENABLE=vault" in out
    assert "Configuration: vault is used" in out
    assert "Allowed hosts: mlflow.example" in out
    assert "hit rate" in out


def test_info_json_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_vault(monkeypatch)
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE_AWS_SECRETS_MANAGER", "true")
    result = invoke("info", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert data["entry_point"]["registered"] is True
    assert data["configuration"] == {
        "backend": "vault",
        "error": None,
        "auth_mode": {
            "mode": "auto",
            "variable": "MLFLOW_VAULT_AUTH_MODE",
            "source": "MLFLOW_VAULT_AUTH_MODE unset, the default",
            "in_effect": "auto (MLFLOW_VAULT_AUTH_MODE unset, the default): a username/password "
            "secret → basic, anything else → bearer",
        },
    }
    builtin = ("vault", "aws-secrets-manager", "azure-key-vault")
    states = {
        b["name"]: (b["enabled"], b["state"], b["sdk_installed"])
        for b in data["backends"]
        if b["name"] in builtin  # the stores this checkout has (installed metadata may list more)
    }
    assert states == {
        "vault": (True, "chosen", True),
        "aws-secrets-manager": (True, "not needed", True),
        "azure-key-vault": (False, "disabled", True),
    }
    assert data["variables"]["VAULT_TOKEN"] == "***"
    assert data["mlflow_variables"]["MLFLOW_TRACKING_PASSWORD"] == "***"
    assert data["hosts"] == {
        "source": "the MLflow tracking/registry URI hosts (MLFLOW_SECRETS_ALLOWED_HOSTS is unset)",
        "allowed_hosts": ["mlflow.example:443"],
        "allow_http": False,
        "header": "Authorization",
    }
    assert set(data["cache"]) >= {"entries", "hits", "misses", "fetches", "hit_rate"}
    assert data["clear_marker"]["exists"] is False
    for value in SECRET_VALUES.values():
        assert value not in result.stdout


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("VAULT_TOKEN", True),
        ("VAULT_SECRET_ID", True),
        ("AWS_ACCESS_KEY_ID", True),
        ("SOME_API_KEY", True),
        ("MLFLOW_SECRETS_AUTH_ENABLE", False),  # SECRETS (plural) is the plugin's own prefix
        ("MLFLOW_SECRETS_ALLOWED_HOSTS", False),
        ("MLFLOW_VAULT_SECRET_PATH", False),
        ("MLFLOW_AZURE_KEY_VAULT_URL", False),
        ("MLFLOW_AWS_SECRET_NAME", False),
        ("VAULT_ADDR", False),
    ],
)
def test_which_variables_are_masked(name: str, secret: bool) -> None:
    assert is_secret_variable(name) is secret
    assert (masked_value(name, "value-xyz") == "***") is secret


def test_info_shows_the_auth_mode_in_effect_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    configure_vault(monkeypatch)
    out = invoke("info").stdout
    assert (
        "Auth mode: auto (MLFLOW_VAULT_AUTH_MODE unset, the default): a username/password "
        "secret → basic, anything else → bearer"
    ) in out
    monkeypatch.setenv("MLFLOW_VAULT_AUTH_MODE", "Basic")
    out = invoke("info").stdout
    assert (
        "Auth mode: basic (MLFLOW_VAULT_AUTH_MODE=basic): strict, a secret that fits bearer" in out
    )


def without_sdk(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    """As if the extra providing ``module`` were not installed: it can be neither found nor
    imported (``sys.modules[name] = None`` is how Python marks a module as unimportable)."""
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)


def test_info_says_why_it_exits_1_when_the_chosen_backend_has_no_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_sdk(monkeypatch, "boto3")
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "aws-secrets-manager")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "team/mlflow")
    result = invoke("info")
    assert result.exit_code == 1
    out = result.stdout
    assert "is used" not in out
    assert (
        "Configuration: not usable: aws-secrets-manager is enabled but its SDK is not installed: "
        "pip install 'mlflow-secrets-auth[aws]'"
    ) in out
    data = json.loads(invoke("info", "--json").stdout)
    assert data["ok"] is False
    assert data["configuration"]["backend"] is None
    assert "pip install 'mlflow-secrets-auth[aws]'" in data["configuration"]["error"]


def test_a_missing_sdk_and_missing_variables_are_reported_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_sdk(monkeypatch, "boto3")
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "aws-secrets-manager")
    both = (
        "aws-secrets-manager: MLFLOW_AWS_SECRET_NAME (or MLFLOW_AWS_SECRET_ID) not set, and its "
        "SDK is not installed: pip install 'mlflow-secrets-auth[aws]'"
    )
    result = invoke("info")
    assert result.exit_code == 1
    assert f"Configuration: not usable: no enabled backend is fully configured: {both}" in (
        result.stdout
    )
    check = by_id(run_doctor(os.environ))["configuration"]
    assert check.status == "failed"
    assert (
        "aws-secrets-manager skipped: MLFLOW_AWS_SECRET_NAME (or MLFLOW_AWS_SECRET_ID) not set, "
        "and its SDK is not installed"
    ) in check.detail
    assert check.fix == (
        "set MLFLOW_AWS_SECRET_NAME (or MLFLOW_AWS_SECRET_ID) and run pip install "
        "'mlflow-secrets-auth[aws]' (aws-secrets-manager)"
    )


def test_doctor_names_a_missing_sdk_of_the_chosen_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    without_sdk(monkeypatch, "boto3")
    env = {"MLFLOW_SECRETS_AUTH_ENABLE": "aws-secrets-manager", "MLFLOW_AWS_SECRET_NAME": "x/y"}
    check = by_id(run_doctor(env))["configuration"]
    assert check.status == "failed"
    assert check.detail.startswith("aws-secrets-manager is enabled but its SDK is not installed")
    assert check.fix == "pip install 'mlflow-secrets-auth[aws]'"


def test_no_doubled_wording_with_nothing_set() -> None:
    info_out = invoke("info").stdout
    doctor_out = invoke("doctor").stdout
    for text in (info_out, doctor_out):
        assert "MLFLOW_TRACKING_AUTH: MLFLOW_TRACKING_AUTH" not in text
        assert "(none) (" not in text and "))" not in text
        assert "not set: MLFLOW_TRACKING_AUTH is not set" not in text
    assert "MLFLOW_TRACKING_AUTH is not set: MLflow will not call the plugin" in info_out
    assert (
        "Allowed hosts: none: MLFLOW_SECRETS_ALLOWED_HOSTS is unset and no "
        "MLFLOW_TRACKING_URI/MLFLOW_REGISTRY_URI names a server"
    ) in info_out
    assert "✗ MLflow activation: provider: MLFLOW_TRACKING_AUTH is not set" in doctor_out


def test_dry_run_without_a_url_and_without_a_tracking_uri_is_a_usage_error() -> None:
    result = invoke("doctor", "--dry-run")
    assert result.exit_code == 2
    assert "Invalid value for '--dry-run'" in result.stderr
    assert "MLFLOW_TRACKING_URI, which is not set" in result.stderr
    assert "--dry-run https://mlflow.example.com" in result.stderr
    assert result.stdout == ""


def test_dry_run_without_a_url_checks_the_tracking_uri_like_a_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    result = invoke("doctor", "--dry-run", "--json")
    assert result.exit_code == 2
    assert "without a URL it uses MLFLOW_TRACKING_URI, but" in result.stderr
    assert "is not an http(s) URL" in result.stderr


# -- closed pipes ---------------------------------------------------------------------------------

CLI = str(Path(sys.executable).with_name("mlflow-secrets-auth"))
CONFIGURED = {
    "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
    "VAULT_ADDR": "https://vault.example:8200",
    "VAULT_TOKEN": "hvs.never-contacted",
    "MLFLOW_VAULT_SECRET_PATH": "secret/mlflow/auth",
}


@pytest.mark.parametrize(
    ("args", "configured", "verdict"),
    [(["info"], True, 0), (["info"], False, 1), (["doctor"], False, 1), (["--help"], False, 1)],
)
def test_a_reader_that_is_already_gone_ends_the_output_quietly(
    args: list[str], configured: bool, verdict: int
) -> None:
    """Deterministic form of `| head -1`: the pipe's read end is closed before the command
    writes, so its very first line meets EPIPE. The command keeps its own exit status."""
    env = {**os.environ, **(CONFIGURED if configured else {})}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [CLI, *args], stdout=write_end, stderr=subprocess.PIPE, env=env, timeout=60
        )
    finally:
        os.close(write_end)
    assert done.stderr.decode() == ""
    assert done.returncode == verdict


@pytest.mark.parametrize("command", ["info", "doctor"])
def test_piped_into_head_ends_quietly(command: str) -> None:
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f'"{CLI}" {command} | head -1'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.stderr == ""
    assert done.stdout.startswith("mlflow-secrets-auth ") and done.stdout.count("\n") == 1
    assert done.returncode == 1  # the command's own verdict (nothing is configured here)


# -- cache clear / status -----------------------------------------------------------------------


def test_cache_status_before_any_clear(private_cache_dir: Path) -> None:
    result = invoke("cache", "status", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["marker"]["path"] == str(private_cache_dir / MARKER_NAME)
    assert data["marker"]["exists"] is False
    assert data["this_process"]["entries"] == 0
    text = invoke("cache", "status")
    assert "no clear requested yet" in text.stdout


def test_cache_clear_writes_a_private_marker_that_status_reports(private_cache_dir: Path) -> None:
    result = invoke("cache", "clear")
    assert result.exit_code == 0, result.output
    generation = result.stdout.split("generation ", 1)[1].split(")", 1)[0]
    assert len(generation) == 32
    assert stat.S_IMODE(private_cache_dir.stat().st_mode) == 0o700
    marker = private_cache_dir / MARKER_NAME
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600
    assert json.loads(marker.read_text())["generation"] == generation
    assert [p.name for p in private_cache_dir.iterdir()] == [MARKER_NAME]  # no temp files left
    status = json.loads(invoke("cache", "status", "--json").stdout)["marker"]
    assert status["exists"] is True
    assert status["generation"] == generation
    assert status["changed_at"] and status["requested_at"]
    again = invoke("cache", "clear").stdout.split("generation ", 1)[1].split(")", 1)[0]
    assert again != generation


def test_cache_clear_into_an_unusable_directory_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_SECRETS_CACHE_DIR", str(blocker / "sub"))
    result = invoke("cache", "clear")
    assert result.exit_code == 1
    assert "cannot write the clear marker" in result.stderr
    assert "MLFLOW_SECRETS_CACHE_DIR" in result.stderr
    assert "Traceback" not in result.output


def test_marker_directory_resolution(tmp_path: Path) -> None:
    home = Path.home()
    assert marker_directory({}) == home / ".cache" / "mlflow-secrets-auth"
    xdg = {"XDG_CACHE_HOME": str(tmp_path)}
    assert marker_directory(xdg) == tmp_path / "mlflow-secrets-auth"
    assert marker_directory({"XDG_CACHE_HOME": "relative/dir"}) == marker_directory({})
    explicit = {**xdg, "MLFLOW_SECRETS_CACHE_DIR": str(tmp_path / "x")}
    assert marker_directory(explicit) == tmp_path / "x"


# -- the marker's poll semantics ----------------------------------------------------------------


def test_poll_reports_each_clear_once(tmp_path: Path) -> None:
    writer = ClearMarker(tmp_path)
    reader = ClearMarker(tmp_path, interval=0)
    assert reader.poll() is False  # first look: records "no marker"
    assert reader.poll() is False
    writer.request_clear()
    assert reader.poll() is True  # a marker appearing counts: the process predates it
    assert reader.poll() is False
    writer.request_clear()
    writer.request_clear()
    assert reader.poll() is True  # two clears between looks: one drop is enough
    assert reader.poll() is False


def test_first_look_at_an_existing_marker_is_not_a_clear(tmp_path: Path) -> None:
    ClearMarker(tmp_path).request_clear()
    reader = ClearMarker(tmp_path, interval=0)
    assert reader.poll() is False
    assert reader.poll() is False


def test_two_processes_each_see_one_clear(tmp_path: Path) -> None:
    first, second = ClearMarker(tmp_path, interval=0), ClearMarker(tmp_path, interval=0)
    assert (first.poll(), second.poll()) == (False, False)
    ClearMarker(tmp_path).request_clear()
    assert (first.poll(), second.poll()) == (True, True)
    assert (first.poll(), second.poll()) == (False, False)


def test_a_removed_or_unreadable_marker_means_no_marker(tmp_path: Path) -> None:
    reader = ClearMarker(tmp_path, interval=0)
    writer = ClearMarker(tmp_path)
    writer.request_clear()
    reader.poll()
    (tmp_path / MARKER_NAME).unlink()
    assert reader.poll() is False  # disappearing is not a clear request
    writer.request_clear()
    assert reader.poll() is True
    missing = ClearMarker(tmp_path / "does" / "not" / "exist", interval=0)
    assert missing.poll() is False
    assert missing.status()["exists"] is False


def test_poll_stats_the_file_at_most_once_per_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [100.0]
    reader = ClearMarker(tmp_path, interval=0.1, clock=lambda: now[0])
    calls: list[str] = []
    real_stat = os.stat

    def counting_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).endswith(MARKER_NAME):
            calls.append(str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("mlflow_secrets_auth.clear_marker.os.stat", counting_stat)
    assert reader.poll() is False
    ClearMarker(tmp_path).request_clear()
    for _ in range(1000):
        assert reader.poll() is False  # within the interval: the change is not seen yet
    assert len(calls) == 1
    now[0] += 0.1
    assert reader.poll() is True
    assert len(calls) == 2


def test_concurrent_pollers_in_one_process_see_a_clear_exactly_once(tmp_path: Path) -> None:
    reader = ClearMarker(tmp_path, interval=0)
    reader.poll()
    ClearMarker(tmp_path).request_clear()
    results: list[bool] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        seen = [reader.poll() for _ in range(200)]
        with lock:
            results.extend(seen)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 1


def test_a_running_process_sees_the_cli_clear_promptly(tmp_path: Path) -> None:
    env = {**os.environ, "MLFLOW_SECRETS_CACHE_DIR": str(tmp_path)}
    child = textwrap.dedent(
        """
        import sys, time
        from mlflow_secrets_auth.clear_marker import MARKER
        MARKER.poll()
        print("ready", flush=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if MARKER.poll():
                print("cleared", flush=True)
                break
            time.sleep(0.01)
        else:
            print("timeout", flush=True)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", child], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        script = Path(sys.executable).with_name("mlflow-secrets-auth")
        done = subprocess.run(
            [str(script), "cache", "clear"], env=env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        cleared_at = time.monotonic()
        line = process.stdout.readline().strip()
        assert line == "cleared"
        # The marker is polled every DEFAULT_POLL_INTERVAL (0.1 s): fifty of them leave a busy
        # machine room and still tell "at the next poll" from "at the next TTL".
        assert time.monotonic() - cleared_at < DEFAULT_POLL_INTERVAL * 50
    finally:
        process.kill()
        process.wait()
