"""Which Vault login the environment selects (SPEC §3), what an incomplete one lacks, and how
`info` shows the new variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlflow_secrets_auth.backends.vault_settings import VaultSettings
from mlflow_secrets_auth.errors import ConfigurationError, IncompleteConfigurationError
from mlflow_secrets_auth.info import is_secret_variable
from mlflow_secrets_auth.settings import load_general, load_store_settings

BASE = {"VAULT_ADDR": "https://vault.example:8200", "MLFLOW_VAULT_SECRET_PATH": "kv/ml/auth"}
APPROLE = {"VAULT_ROLE_ID": "role-id", "VAULT_SECRET_ID": "sid-value"}
K8S = {"MLFLOW_VAULT_K8S_ROLE": "trainer"}
JWT = {"MLFLOW_VAULT_JWT_ROLE": "ci", "MLFLOW_VAULT_JWT_TOKEN": "eyJ.jwt.value"}
GITHUB = {
    "ACTIONS_ID_TOKEN_REQUEST_URL": "https://runner.example/idtoken?api-version=2.0",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "gh-request-token",
}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A HOME without a ~/.vault-token unless a test writes one."""
    return tmp_path


def load(home: Path, **env: str) -> VaultSettings:
    settings = load_store_settings("vault", {**BASE, "HOME": str(home), **env}, load_general({}))
    assert isinstance(settings, VaultSettings)
    return settings


def write_token_file(home: Path) -> Path:
    path = home / ".vault-token"
    path.write_text("hvs.from-the-cli\n")
    return path


@pytest.mark.parametrize(
    ("env", "method"),
    [
        ({"VAULT_TOKEN": "t", **APPROLE, **K8S, **JWT}, "token"),
        ({**APPROLE, **K8S, **JWT}, "approle"),
        ({**K8S, **JWT}, "kubernetes"),
        (JWT, "jwt"),
        ({"MLFLOW_VAULT_JWT_ROLE": "ci", "MLFLOW_VAULT_JWT_TOKEN_PATH": "/ci/jwt"}, "jwt"),
        ({"MLFLOW_VAULT_JWT_ROLE": "ci", **GITHUB}, "jwt"),
        ({"VAULT_ROLE_ID": "r", "MLFLOW_VAULT_SECRET_ID_PATH": "/run/sid"}, "approle"),
    ],
)
def test_the_first_configured_login_in_spec_order(
    home: Path, env: dict[str, str], method: str
) -> None:
    write_token_file(home)  # the CLI's file comes last of all
    assert load(home, **env).login_method == method


def test_the_vault_cli_token_file_when_nothing_else_is_configured(home: Path) -> None:
    path = write_token_file(home)
    settings = load(home)
    assert (settings.login_method, settings.token, settings.token_file) == (
        "token",
        None,
        str(path),
    )
    assert settings.token_origin == str(path)
    assert str(path) in settings.login_description


def test_nothing_configured_lists_every_login_option(home: Path) -> None:
    with pytest.raises(IncompleteConfigurationError) as info:
        load(home)
    (login,) = info.value.missing
    for name in (
        "VAULT_TOKEN",
        "VAULT_ROLE_ID",
        "MLFLOW_VAULT_SECRET_ID_PATH",
        "MLFLOW_VAULT_K8S_ROLE",
        "MLFLOW_VAULT_JWT_ROLE",
        "~/.vault-token",
    ):
        assert name in login


def test_a_half_configured_jwt_login_is_reported_not_passed_over(home: Path) -> None:
    write_token_file(home)
    with pytest.raises(IncompleteConfigurationError) as info:
        load(home, MLFLOW_VAULT_JWT_ROLE="ci")
    assert info.value.missing[0].startswith("MLFLOW_VAULT_JWT_TOKEN_PATH")
    assert "id-token: write" in info.value.missing[0]


def test_forced_method_wins_over_the_order(home: Path) -> None:
    settings = load(home, VAULT_TOKEN="t", **JWT, MLFLOW_VAULT_AUTH_METHOD="JWT")
    assert settings.login_method == "jwt"
    assert settings.token is None  # the token is not carried along when not used


def test_forced_method_must_be_complete(home: Path) -> None:
    with pytest.raises(IncompleteConfigurationError) as info:
        load(home, VAULT_TOKEN="t", MLFLOW_VAULT_AUTH_METHOD="approle")
    assert info.value.missing == (
        "VAULT_ROLE_ID",
        "VAULT_SECRET_ID (or MLFLOW_VAULT_SECRET_ID_PATH)",
    )


def test_forced_token_method_uses_the_cli_token_file(home: Path) -> None:
    path = write_token_file(home)
    settings = load(home, **APPROLE, MLFLOW_VAULT_AUTH_METHOD="token")
    assert (settings.login_method, settings.token_file) == ("token", str(path))


def test_unknown_forced_method_names_the_valid_ones(home: Path) -> None:
    with pytest.raises(ConfigurationError) as info:
        load(home, VAULT_TOKEN="t", MLFLOW_VAULT_AUTH_METHOD="ldap")
    assert info.value.variable == "MLFLOW_VAULT_AUTH_METHOD"
    assert "token, approle, kubernetes, jwt" in str(info.value)


@pytest.mark.parametrize(
    "env",
    [
        {**APPROLE, "MLFLOW_VAULT_SECRET_ID_PATH": "/run/sid"},
        {**JWT, "MLFLOW_VAULT_JWT_TOKEN_PATH": "/ci/jwt"},
    ],
)
def test_a_value_and_a_file_for_the_same_credential_is_ambiguous(
    home: Path, env: dict[str, str]
) -> None:
    with pytest.raises(ConfigurationError, match="set only one of them"):
        load(home, **env)


def test_github_actions_endpoint_is_used_only_without_a_given_jwt(home: Path) -> None:
    github = load(home, MLFLOW_VAULT_JWT_ROLE="ci", MLFLOW_VAULT_JWT_AUDIENCE="vault", **GITHUB)
    assert github.github_oidc_url == GITHUB["ACTIONS_ID_TOKEN_REQUEST_URL"]
    assert github.jwt_audience == "vault"
    assert "GitHub Actions" in github.login_description
    given = load(home, **JWT, **GITHUB)
    assert (given.github_oidc_url, given.github_oidc_token) == (None, None)


def test_renew_token_switch_and_defaults(home: Path) -> None:
    assert load(home, VAULT_TOKEN="t").renew_token is False
    assert load(home, VAULT_TOKEN="t", MLFLOW_VAULT_RENEW_TOKEN="true").renew_token is True
    jwt = load(home, **JWT)
    assert (jwt.jwt_mount, jwt.jwt_role) == ("jwt", "ci")


def test_repr_hides_every_login_secret(home: Path) -> None:
    texts = [
        repr(load(home, **APPROLE)),
        repr(load(home, **JWT)),
        repr(load(home, MLFLOW_VAULT_JWT_ROLE="ci", **GITHUB)),
    ]
    for secret in ("sid-value", "eyJ.jwt.value", "gh-request-token"):
        assert all(secret not in text for text in texts)


@pytest.mark.parametrize(
    ("name", "secret"),
    [
        ("MLFLOW_VAULT_JWT_TOKEN", True),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", True),
        ("MLFLOW_VAULT_JWT_TOKEN_PATH", False),
        ("MLFLOW_VAULT_SECRET_ID_PATH", False),
        ("MLFLOW_VAULT_RENEW_TOKEN", False),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", False),
        ("MLFLOW_VAULT_JWT_ROLE", False),
    ],
)
def test_info_masks_the_new_secret_variables(name: str, secret: bool) -> None:
    assert is_secret_variable(name) is secret
