"""Settings: every bad value names its variable and the accepted values."""

from __future__ import annotations

import pytest

from mlflow_secrets_auth.errors import ConfigurationError, IncompleteConfigurationError
from mlflow_secrets_auth.settings import (
    load_general,
    load_settings,
    load_store_settings,
    parse_enabled,
)

VAULT = {
    "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
    "VAULT_ADDR": "https://vault.example:8200",
    "VAULT_TOKEN": "s.secret-token-value",
    "MLFLOW_VAULT_SECRET_PATH": "secret/mlflow/auth",
}


def test_enable_list_is_case_and_space_insensitive_and_ordered_by_priority() -> None:
    env = {"MLFLOW_SECRETS_AUTH_ENABLE": " Azure-Key-Vault , VAULT,aws-secrets-manager "}
    assert parse_enabled(env) == ("vault", "aws-secrets-manager", "azure-key-vault")


def test_per_backend_flags_enable() -> None:
    env = {"MLFLOW_SECRETS_AUTH_ENABLE_AWS_SECRETS_MANAGER": "yes"}
    assert parse_enabled(env) == ("aws-secrets-manager",)
    assert parse_enabled({"MLFLOW_SECRETS_AUTH_ENABLE_VAULT": "off"}) == ()


def test_unknown_backend_names_the_valid_ones() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_enabled({"MLFLOW_SECRETS_AUTH_ENABLE": "vault,gcp"})
    message = str(info.value)
    assert "'gcp'" in message
    assert "vault, aws-secrets-manager, azure-key-vault" in message
    assert info.value.variable == "MLFLOW_SECRETS_AUTH_ENABLE"


def test_bad_boolean_flag_names_variable_but_not_its_value() -> None:
    with pytest.raises(ConfigurationError, match="MLFLOW_SECRETS_AUTH_ENABLE_VAULT is not") as e:
        parse_enabled({"MLFLOW_SECRETS_AUTH_ENABLE_VAULT": "maybe"})
    assert "maybe" not in str(e.value)  # a value set by mistake may be a secret


@pytest.mark.parametrize("value", ["abc", "-5", "0", "nan", "inf", "1e999"])
def test_non_numeric_or_non_positive_ttl_is_rejected(value: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings({**VAULT, "MLFLOW_VAULT_TTL_SEC": value})
    assert info.value.variable == "MLFLOW_VAULT_TTL_SEC"
    assert "positive number" in str(info.value)


def test_ttl_and_timeout_accept_numbers() -> None:
    settings = load_settings(
        {**VAULT, "MLFLOW_VAULT_TTL_SEC": "60", "MLFLOW_SECRETS_TIMEOUT_SEC": "2.5"}
    )
    assert settings.backend is not None
    assert settings.backend.ttl_sec == 60
    assert settings.backend.timeout_sec == 2.5


def test_unknown_auth_mode_lists_accepted_values() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings({**VAULT, "MLFLOW_VAULT_AUTH_MODE": "digest"})
    assert info.value.variable == "MLFLOW_VAULT_AUTH_MODE"
    message = str(info.value)
    assert "'auto' (the default" in message and "'bearer'" in message and "'basic'" in message


@pytest.mark.parametrize(
    ("value", "mode"), [(None, "auto"), ("", "auto"), ("AUTO", "auto"), ("Bearer", "bearer")]
)
def test_auth_mode_is_auto_unless_set(value: str | None, mode: str) -> None:
    env = dict(VAULT) if value is None else {**VAULT, "MLFLOW_VAULT_AUTH_MODE": value}
    settings = load_settings(env)
    assert settings.backend is not None
    assert settings.backend.auth_mode == mode


@pytest.mark.parametrize(
    "addr", ["vault.example:8200", "ftp://vault.example", "https://", "http://h:notaport"]
)
def test_malformed_vault_addr(addr: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load_settings({**VAULT, "VAULT_ADDR": addr})
    assert info.value.variable == "VAULT_ADDR"
    assert "https://vault.example:8200" in str(info.value)  # an example of the right form


def test_secret_path_needs_a_mount() -> None:
    with pytest.raises(ConfigurationError, match="<mount>/<path>"):
        load_settings({**VAULT, "MLFLOW_VAULT_SECRET_PATH": "justaname"})


def test_incomplete_vault_names_missing_variables() -> None:
    with pytest.raises(IncompleteConfigurationError) as info:
        load_store_settings("vault", {"VAULT_ROLE_ID": "r"}, load_general({}))
    assert info.value.missing == (
        "VAULT_ADDR",
        "MLFLOW_VAULT_SECRET_PATH",
        "VAULT_SECRET_ID (or MLFLOW_VAULT_SECRET_ID_PATH)",
    )


def test_enabled_but_nothing_complete_is_an_error_not_inert() -> None:
    with pytest.raises(ConfigurationError, match="VAULT_ADDR"):
        load_settings({"MLFLOW_SECRETS_AUTH_ENABLE": "vault"})


def test_nothing_enabled_is_inert() -> None:
    assert load_settings({}).backend is None


def test_first_complete_backend_wins_and_incomplete_ones_are_recorded() -> None:
    env = {
        "MLFLOW_SECRETS_AUTH_ENABLE": "vault,aws-secrets-manager",
        "MLFLOW_AWS_SECRET_ID": "prod/mlflow",
        "AWS_REGION": "eu-west-1",
    }
    settings = load_settings(env)
    assert settings.backend is not None
    assert settings.backend.backend_name == "aws-secrets-manager"
    assert settings.backend.region == "eu-west-1"  # type: ignore[union-attr]
    assert [s.backend for s in settings.skipped] == ["vault"]


def test_repr_of_settings_hides_tokens() -> None:
    settings = load_settings({**VAULT, "VAULT_ROLE_ID": "r", "VAULT_SECRET_ID": "sid-secret"})
    assert "s.secret-token-value" not in repr(settings)
    assert "sid-secret" not in repr(settings)


def test_header_name_must_be_a_token() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_general({"MLFLOW_AUTH_HEADER_NAME": "X Api Key"})
    assert info.value.variable == "MLFLOW_AUTH_HEADER_NAME"


def test_allowed_hosts_bad_entry() -> None:
    with pytest.raises(ConfigurationError) as info:
        load_general({"MLFLOW_SECRETS_ALLOWED_HOSTS": "good.example,http://bad.example/x"})
    assert info.value.variable == "MLFLOW_SECRETS_ALLOWED_HOSTS"
    assert "http://bad.example/x" in str(info.value)


def test_max_stale_may_be_zero() -> None:
    assert load_general({"MLFLOW_SECRETS_MAX_STALE_SEC": "0"}).max_stale_sec == 0
