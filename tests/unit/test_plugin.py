"""The MLflow provider, the public API and the package's import-time promises (SPEC §1, §7, §8,
§10)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

import mlflow_secrets_auth
from mlflow_secrets_auth import SecretsAuthProviderFactory
from mlflow_secrets_auth.config import get_allowed_hosts, is_provider_enabled
from mlflow_secrets_auth.errors import ConfigurationError


def test_entry_point_is_registered_and_loads_the_factory() -> None:
    (point,) = [
        ep
        for ep in entry_points(group="mlflow.request_auth_provider")
        if ep.name == "mlflow_secrets_auth"
    ]
    assert point.value == "mlflow_secrets_auth:SecretsAuthProviderFactory"
    factory = point.load()()
    assert factory.get_name() == "mlflow_secrets_auth"


def test_nothing_enabled_is_inert_and_says_so_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="mlflow_secrets_auth")
    assert SecretsAuthProviderFactory().get_auth() is None
    assert any("plugin inactive" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigurationError, match="MLFLOW_SECRETS_AUTH_ENABLE"):
        mlflow_secrets_auth.get_auth()


def test_enabled_but_incomplete_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "vault")
    monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200")
    with pytest.raises(ConfigurationError) as info:
        SecretsAuthProviderFactory().get_auth()
    assert "MLFLOW_SECRETS_AUTH_ENABLE" not in str(info.value)
    assert "MLFLOW_VAULT_SECRET_PATH" in str(info.value)
    assert "VAULT_TOKEN" in str(info.value)


def test_environment_changes_are_picked_up_without_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    factory = SecretsAuthProviderFactory()
    assert factory.get_auth() is None
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "vault")
    monkeypatch.setenv("VAULT_ADDR", "https://vault.example:8200")
    monkeypatch.setenv("VAULT_TOKEN", "t")
    monkeypatch.setenv("MLFLOW_VAULT_SECRET_PATH", "secret/a")
    first = factory.get_auth()
    assert first is not None
    assert factory.get_auth() is first  # same configuration: the same object
    monkeypatch.setenv("MLFLOW_VAULT_SECRET_PATH", "secret/b")
    second = factory.get_auth()
    assert second is not None and second is not first
    assert "secret/b" in second.source.key


def test_get_request_auth_refuses_a_disallowed_url_up_front(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {
        "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
        "VAULT_ADDR": "https://vault.example:8200",
        "VAULT_TOKEN": "t",
        "MLFLOW_VAULT_SECRET_PATH": "secret/a",
        "MLFLOW_SECRETS_ALLOWED_HOSTS": "mlflow.example.com",
    }.items():
        monkeypatch.setenv(name, value)
    factory = SecretsAuthProviderFactory()
    assert factory.get_request_auth("https://mlflow.example.com/api") is not None
    with pytest.raises(Exception, match=r"evil\.example"):
        factory.get_request_auth("https://evil.example/api")


def test_config_helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE_AZURE_KEY_VAULT", "true")
    assert is_provider_enabled("azure-key-vault")
    assert not is_provider_enabled("vault")
    with pytest.raises(ValueError, match="valid names"):
        is_provider_enabled("gcp")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://track.example:5000")
    assert get_allowed_hosts() == ["track.example:5000"]  # the origin, port included
    monkeypatch.setenv("MLFLOW_SECRETS_ALLOWED_HOSTS", "a.example, *.b.example:8443")
    assert get_allowed_hosts() == ["a.example", "*.b.example:8443"]


def test_import_loads_no_sdk_and_no_mlflow() -> None:
    probe = (
        "import sys, json, mlflow_secrets_auth\n"
        "f = mlflow_secrets_auth.SecretsAuthProviderFactory(); f.get_name(); repr(f)\n"
        "roots = {m.split('.')[0] for m in sys.modules}\n"
        "print(json.dumps(sorted(roots & {'hvac','boto3','botocore','azure','mlflow'})))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        (None, "['NullHandler'] NOTSET"),
        # With the variable, records also reach stderr while the application logs nothing
        # itself (SPEC §10); the fallback handler steps aside once it does.
        ("debug", "['NullHandler', 'FallbackStderrHandler'] DEBUG"),
    ],
)
def test_logger_has_a_null_handler_and_level_from_env(level: str | None, expected: str) -> None:
    probe = (
        "import logging, mlflow_secrets_auth.log\n"
        "root = logging.getLogger('mlflow_secrets_auth')\n"
        "print([type(h).__name__ for h in root.handlers], logging.getLevelName(root.level))\n"
    )
    env = {"PATH": "/usr/bin:/bin"}
    if level is not None:
        env["MLFLOW_SECRETS_LOG_LEVEL"] = level
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == expected


def test_package_declares_its_type_hints() -> None:
    from importlib.resources import files

    assert files("mlflow_secrets_auth").joinpath("py.typed").is_file()
