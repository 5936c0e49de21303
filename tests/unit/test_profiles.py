"""Profiles (SPEC §11): the configuration file read with the stores' real loaders, the selection
rules, and every file error naming the file, the profile and the key (never a value)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from mlflow_secrets_auth.backends.aws import AwsSettings
from mlflow_secrets_auth.backends.azure import AzureSettings
from mlflow_secrets_auth.backends.base import Variable
from mlflow_secrets_auth.errors import ConfigurationError
from mlflow_secrets_auth.hosts import HostRule
from mlflow_secrets_auth.profiles import (
    CONFIG_VARIABLE,
    PROFILE_VARIABLE,
    ConfigDocument,
    Profile,
    ProfileError,
    ProfileFile,
    ProfileSet,
    config_path,
    is_secret_key,
    load_profiles,
)
from mlflow_secrets_auth.settings import load_general

from support.leaks import LeakCheck

SPEC_EXAMPLE = """
[defaults]
timeout_sec = 5

[profiles.prod]
hosts = ["mlflow.corp.example", "registry.corp.example:8443"]
backend = "vault"
addr = "https://vault.corp.example:8200"
secret_path = "kv/mlflow/prod"
k8s_role = "trainer"

[profiles.gateway]
hosts = ["*.gateway.corp.example"]
backend = "aws-secrets-manager"
secret_name = "mlflow/gateway"
region = "eu-west-1"
auth_mode = "bearer"
"""

AWS_ENV = {
    "MLFLOW_SECRETS_AUTH_ENABLE": "aws-secrets-manager",
    "MLFLOW_AWS_SECRET_NAME": "env/secret",
    "AWS_REGION": "us-east-1",
}

Load = Callable[..., ProfileSet]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return tmp_path / "config.toml"


@pytest.fixture
def load(config: Path) -> Load:
    """Write ``text`` to the config file and load the profiles for ``env`` (fresh reader)."""

    def run(text: str | None = None, **env: str) -> ProfileSet:
        if text is not None:
            config.write_text(textwrap.dedent(text), encoding="utf-8")
        environ = {CONFIG_VARIABLE: str(config), **env}
        return load_profiles(environ, load_general(environ), source=ProfileFile())

    return run


def refused(load: Load, text: str, **env: str) -> ProfileError:
    with pytest.raises(ProfileError) as info:
        load(text, **env)
    return info.value


def aws(name: str, hosts: str, secret: str = "mlflow/a", extra: str = "") -> str:
    return f"""
[profiles.{name}]
hosts = {hosts}
backend = "aws-secrets-manager"
secret_name = "{secret}"
region = "eu-west-1"
{extra}
"""


# --- the file as SPEC §11 shows it ----------------------------------------------------------


def test_spec_example_parses_with_each_stores_own_loader(load: Load, config: Path) -> None:
    profiles = load(SPEC_EXAMPLE)
    assert profiles.names == ("prod", "gateway")
    prod, gateway = profiles.profiles
    assert prod.rules == (
        HostRule("mlflow.corp.example"),
        HostRule("registry.corp.example", 8443),
    )
    assert prod.backend == "vault"
    assert prod.settings.identity == "vault:https://vault.corp.example:8200:kv/mlflow/prod"
    assert prod.settings.timeout_sec == 5  # from [defaults]
    assert prod.origin_text == f"file {config}"
    assert gateway.rules == (HostRule("*.gateway.corp.example"),)
    assert gateway.settings.identity == "aws-secrets-manager:eu-west-1:mlflow/gateway:AWSCURRENT"
    assert gateway.settings.auth_mode == "bearer"
    assert gateway.settings.timeout_sec == 5
    assert gateway.header_name is None and gateway.allow_http is False
    assert profiles.env is None  # nothing enabled in the environment


def test_azure_profile_with_toml_booleans_and_numbers(load: Load) -> None:
    (profile,) = load(
        """
        [profiles.az]
        hosts = ["mlflow.azure.example"]
        backend = "azure-key-vault"
        vault_url = "https://myvault.vault.azure.net/"
        secret_name = "mlflow-token"
        verify_challenge_resource = false
        ttl_sec = 60
        timeout_sec = 2.5
        allow_http = true
        header_name = "X-Api-Key"
        """
    ).profiles
    settings = profile.settings
    assert isinstance(settings, AzureSettings)
    assert settings.identity == "azure-key-vault:https://myvault.vault.azure.net:mlflow-token:"
    assert settings.vault_url == "https://myvault.vault.azure.net"
    assert settings.verify_challenge_resource is False
    assert settings.ttl_sec == 60 and settings.timeout_sec == 2.5
    assert profile.allow_http is True and profile.header_name == "X-Api-Key"


def test_defaults_apply_to_every_profile_and_a_profile_overrides_them(load: Load) -> None:
    profiles = load(
        """
        [defaults]
        backend = "aws-secrets-manager"
        region = "eu-central-1"
        ttl_sec = 120
        max_stale_sec = 0
        header_name = "X-Token"

        [profiles.a]
        hosts = ["a.example"]
        secret_name = "mlflow/a"

        [profiles.b]
        hosts = ["b.example"]
        secret_name = "mlflow/b"
        region = "us-west-2"
        ttl_sec = 30
        """,
        MLFLOW_SECRETS_TIMEOUT_SEC="7",
    )
    a, b = profiles.profiles
    assert isinstance(a.settings, AwsSettings) and isinstance(b.settings, AwsSettings)
    assert a.settings.region == "eu-central-1"
    assert b.settings.region == "us-west-2"
    assert (a.settings.ttl_sec, b.settings.ttl_sec) == (120, 30)
    assert a.max_stale_sec == b.max_stale_sec == 0
    assert a.header_name == b.header_name == "X-Token"
    # Not set in the file: the environment's general policy.
    assert a.settings.timeout_sec == b.settings.timeout_sec == 7


def test_two_profiles_naming_the_same_secret_share_its_identity(load: Load) -> None:
    one, two = load(
        aws("one", '["one.example"]', "shared/secret", 'auth_mode = "bearer"')
        + aws("two", '["two.example"]', "shared/secret", "ttl_sec = 60")
    ).profiles
    assert one.name != two.name
    assert one.settings.identity == two.settings.identity


# --- where the store's settings come from -----------------------------------------------------


def test_login_variables_come_from_the_environment_and_nothing_else_does(load: Load) -> None:
    env = {
        "AWS_PROFILE": "trainer",  # boto3's chain: the profile's login comes from here
        "MLFLOW_AWS_SECRET_ID": "env/secret",  # the env profile's secret: never borrowed
        "AWS_REGION": "us-east-1",
    }
    (profile,) = load(aws("a", '["a.example"]'), **env).profiles
    env_profile_settings = load_profiles(
        {**AWS_ENV, **env}, load_general({**AWS_ENV, **env}), source=ProfileFile()
    )
    env_settings = env_profile_settings.profiles[-1].settings
    assert isinstance(profile.settings, AwsSettings) and isinstance(env_settings, AwsSettings)
    assert profile.settings.region == "eu-west-1"
    same_sdk = env_settings.sdk_environment
    assert profile.settings.sdk_environment == same_sdk
    assert "AWS_PROFILE" in load(**env).watched

    error = refused(
        load, '[profiles.a]\nhosts = ["a.example"]\nbackend = "aws-secrets-manager"', **env
    )
    assert error.profile == "a" and error.key == "secret_name"
    assert "secret_name" in str(error) and "incomplete" in str(error)


def test_store_validation_errors_name_the_profile_key_not_the_variable(load: Load) -> None:
    error = refused(
        load,
        """
        [profiles.az]
        hosts = ["mlflow.example"]
        backend = "azure-key-vault"
        vault_url = "http://not-https.example"
        secret_name = "s"
        """,
    )
    assert (error.profile, error.key) == ("az", "vault_url")
    assert "'az'" in str(error) and "vault_url" in str(error) and str(error.path) in str(error)
    assert "MLFLOW_AZURE_KEY_VAULT_URL" not in str(error)


def test_a_bad_default_says_it_was_set_in_defaults(load: Load) -> None:
    error = refused(load, "[defaults]\nttl_sec = -1\n" + aws("a", '["a.example"]'))
    assert (error.profile, error.key) == ("a", "ttl_sec")
    assert "[defaults]" in str(error) and "positive number" in str(error)


# --- secrets never go in the file -------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "key", "alternative"),
    [
        ("vault", "token", "VAULT_TOKEN"),
        ("vault", "secret_id", "secret_id_path"),
        ("vault", "jwt_token", "jwt_token_path"),
        ("vault", "password", "environment"),
        ("azure-key-vault", "client_secret", "environment"),
        ("aws-secrets-manager", "aws_session_token", "environment"),
        ("aws-secrets-manager", "db_password", "environment"),
        ("aws-secrets-manager", "signing_secret", "environment"),
    ],
)
def test_keys_that_would_hold_a_secret_are_refused_without_the_value(
    load: Load, backend: str, key: str, alternative: str
) -> None:
    value = "s.Wm4ZvQk8-top-secret-value"
    error = refused(
        load,
        f"""
        [profiles.p]
        hosts = ["p.example"]
        backend = "{backend}"
        {key} = "{value}"
        """,
    )
    assert (error.profile, error.key) == ("p", key)
    message = str(error)
    assert repr(key) in message and "'p'" in message and str(error.path) in message
    assert alternative in message
    assert value not in message and value not in repr(error) and value not in repr(vars(error))


def test_a_secret_in_defaults_is_refused_too(load: Load) -> None:
    error = refused(load, '[defaults]\ntoken = "hvs.value-in-defaults"\n' + aws("a", '["a"]'))
    assert error.profile is None and error.key == "token"
    assert "[defaults]" in str(error) and "hvs.value-in-defaults" not in str(error)


def test_path_keys_and_declared_flags_are_not_mistaken_for_secrets(load: Load) -> None:
    (profile,) = load(
        """
        [profiles.v]
        hosts = ["v.example"]
        backend = "vault"
        addr = "https://vault.example:8200"
        secret_path = "kv/mlflow"
        role_id = "r-1"
        secret_id_path = "/run/secrets/secret-id"
        renew_token = false
        """,
        VAULT_SECRET_ID="from-the-environment",
    ).profiles
    assert profile.settings.identity == "vault:https://vault.example:8200:kv/mlflow"


def test_a_key_a_store_marks_secret_is_refused_whatever_its_name() -> None:
    declared = (
        Variable("X_LOGIN", "login", "a credential", secret=True),
        Variable("X_RENEW_TOKEN", "renew_token", "a flag"),
    )
    assert is_secret_key("login", declared)
    assert not is_secret_key("renew_token", declared)
    assert is_secret_key("renew_token", ())  # undeclared: its name says credential
    assert not is_secret_key("token_file", ()) and not is_secret_key("jwt_token_path", ())


def test_refused_secret_does_not_leak_at_debug(
    load: Load, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    check = LeakCheck(caplog, capfd)
    check.begin()
    secret = "hvs.CAESIJ-leak-probe-7f3a"
    error = refused(load, aws("a", '["a.example"]', extra=f'token = "{secret}"'))
    check.assert_clean([secret], error)


# --- malformed files ---------------------------------------------------------------------------


def test_toml_syntax_error_names_the_file_and_the_line(load: Load, config: Path) -> None:
    error = refused(
        load,
        '[profiles.a]\nhosts = ["a.example"]\nsecret_name = mlflow-unquoted-value\n',
    )
    assert str(config) in str(error) and "line 3" in str(error)
    assert "mlflow-unquoted-value" not in str(error)


def test_toml_error_does_not_quote_an_illegal_character(load: Load) -> None:
    error = refused(load, '[profiles.a]\nsecret_name = "qz\x01vw"\n')
    assert "line 2" in str(error) and "\\x01" not in str(error) and "qz" not in str(error)


def test_toml_error_at_the_end_names_the_last_line(load: Load) -> None:
    error = refused(load, '[profiles.a]\nhosts = ["a.example"\n')
    assert "line 2" in str(error)


def test_unknown_backend_names_the_profile_key_and_installed_stores(load: Load) -> None:
    error = refused(load, '[profiles.p]\nhosts = ["p.example"]\nbackend = "keepass"\n')
    assert (error.profile, error.key) == ("p", "backend")
    assert "'keepass'" in str(error) and "aws-secrets-manager" in str(error)


def test_missing_backend_is_named(load: Load) -> None:
    error = refused(load, '[profiles.p]\nhosts = ["p.example"]\n')
    assert (error.profile, error.key) == ("p", "backend")


def test_unknown_key_names_the_profile_the_key_and_the_valid_keys(load: Load) -> None:
    error = refused(load, aws("p", '["p.example"]', extra='secret_nmae = "typo"'))
    assert (error.profile, error.key) == ("p", "secret_nmae")
    assert "'secret_nmae'" in str(error) and "secret_name" in str(error)


def test_unknown_key_in_defaults_is_named(load: Load) -> None:
    error = refused(load, '[defaults]\nregoin = "x"\n' + aws("p", '["p.example"]'))
    assert error.profile is None and error.key == "regoin" and "[defaults]" in str(error)


def test_unknown_top_level_table_is_named(load: Load) -> None:
    error = refused(load, "[profile.a]\nhosts = []\n")
    assert error.key == "profile"


@pytest.mark.parametrize(
    "hosts",
    [
        '"mlflow.example"',  # not a list
        "[]",  # empty
        '["https://mlflow.example/api"]',  # a URL with a path
        '["mlflow.example/api"]',  # a path
        '["mlflow.example:99999"]',  # a port out of range
        "[1, 2]",  # not strings
    ],
)
def test_bad_hosts_name_the_profile_and_the_key(load: Load, hosts: str) -> None:
    error = refused(load, aws("p", hosts))
    assert (error.profile, error.key) == ("p", "hosts")
    assert "'p'" in str(error) and "'hosts'" in str(error)


def test_missing_hosts_is_named(load: Load) -> None:
    error = refused(load, '[profiles.p]\nbackend = "aws-secrets-manager"\nsecret_name = "s"\n')
    assert (error.profile, error.key) == ("p", "hosts")


def test_hosts_in_defaults_are_refused(load: Load) -> None:
    error = refused(load, '[defaults]\nhosts = ["x.example"]\n' + aws("p", '["p.example"]'))
    assert error.profile is None and error.key == "hosts" and "per profile" in str(error)


def test_a_profile_may_not_be_called_env(load: Load) -> None:
    error = refused(load, aws("env", '["e.example"]'))
    assert error.profile == "env" and "reserved" in str(error)


# --- which file ---------------------------------------------------------------------------------


def test_config_path_variable_then_xdg_then_home(tmp_path: Path) -> None:
    assert config_path({CONFIG_VARIABLE: str(tmp_path / "x.toml")}) == tmp_path / "x.toml"
    xdg = {"XDG_CONFIG_HOME": str(tmp_path / "xdg"), "HOME": "/home/u"}
    assert config_path(xdg) == tmp_path / "xdg/mlflow-secrets-auth/config.toml"
    home = {"XDG_CONFIG_HOME": "relative/ignored", "HOME": "/home/u"}
    assert config_path(home) == Path("/home/u/.config/mlflow-secrets-auth/config.toml")


def test_no_file_at_the_default_path_means_no_file_profiles(tmp_path: Path) -> None:
    env = {"XDG_CONFIG_HOME": str(tmp_path), **AWS_ENV}
    profiles = load_profiles(env, load_general(env), source=ProfileFile())
    assert profiles.names == ("env",)
    assert profiles.env is not None and profiles.env.rules is None
    assert profiles.env.origin_text == "environment"
    empty = load_profiles(
        {"XDG_CONFIG_HOME": str(tmp_path)}, load_general({}), source=ProfileFile()
    )
    assert empty.profiles == ()


def test_a_missing_file_named_by_the_variable_is_an_error(load: Load, config: Path) -> None:
    with pytest.raises(ProfileError) as info:
        load()
    assert CONFIG_VARIABLE in str(info.value) and str(config) in str(info.value)
    assert info.value.variable == CONFIG_VARIABLE


# --- selection ---------------------------------------------------------------------------------


def _select(profiles: ProfileSet, host: str, port: int = 443) -> str | None:
    found = profiles.select(host, port)
    return None if found is None else found.name


def test_an_exact_host_beats_a_pattern_listed_earlier(load: Load) -> None:
    profiles = load(
        aws("wide", '["*.corp.example"]', "s/wide")
        + aws("exact", '["mlflow.corp.example"]', "s/exact")
    )
    assert _select(profiles, "mlflow.corp.example") == "exact"
    assert _select(profiles, "MLflow.Corp.Example") == "exact"
    assert _select(profiles, "other.corp.example") == "wide"
    assert _select(profiles, "elsewhere.example") is None


def test_among_equals_file_order_wins(load: Load) -> None:
    profiles = load(
        aws("first", '["*.example", "same.example"]', "s/1")
        + aws("second", '["*.example", "same.example"]', "s/2")
    )
    assert _select(profiles, "same.example") == "first"
    assert _select(profiles, "x.example") == "first"


def test_host_port_restricts_the_port(load: Load) -> None:
    profiles = load(
        aws("registry", '["mlflow.example:8443"]', "s/r") + aws("any", '["*.example"]', "s/a")
    )
    assert _select(profiles, "mlflow.example", 8443) == "registry"
    assert _select(profiles, "mlflow.example", 443) == "any"


def test_env_serves_the_hosts_no_file_profile_names(load: Load) -> None:
    profiles = load(aws("a", '["a.example"]'), **AWS_ENV)
    assert profiles.names == ("a", "env")
    assert _select(profiles, "a.example") == "a"
    assert _select(profiles, "tracking.example") == "env"
    assert "a from" in profiles.summary() and "env from the environment" in profiles.summary()


def test_profile_variable_restricts_to_one_profile(load: Load) -> None:
    text = aws("a", '["a.example"]', "s/a") + aws("b", '["*.example"]', "s/b")
    only_b = load(text, **AWS_ENV, **{PROFILE_VARIABLE: "b"})
    assert only_b.names == ("b",)
    assert _select(only_b, "a.example") == "b"
    assert _select(only_b, "elsewhere.test") is None  # env is not in the set
    only_env = load(text, **AWS_ENV, **{PROFILE_VARIABLE: "env"})
    assert only_env.names == ("env",)
    assert _select(only_env, "a.example") == "env"


def test_restricting_builds_only_that_profile(load: Load) -> None:
    # Profile "broken" lacks its secret name; with the variable naming "a" it is not built.
    text = (
        aws("a", '["a.example"]')
        + '[profiles.broken]\nhosts = ["b"]\nbackend = "azure-key-vault"\n'
    )
    assert load(text, **{PROFILE_VARIABLE: "a"}).names == ("a",)
    with pytest.raises(ProfileError):
        load(text)


def test_unknown_profile_name_lists_the_known_ones(load: Load) -> None:
    with pytest.raises(ProfileError) as info:
        load(aws("a", '["a"]') + aws("b", '["b"]', "s/b"), **AWS_ENV, **{PROFILE_VARIABLE: "c"})
    message = str(info.value)
    assert info.value.variable == PROFILE_VARIABLE
    assert PROFILE_VARIABLE in message and "'c'" in message and "a, b, env" in message


def test_env_incomplete_beside_file_profiles_is_skipped_but_alone_is_an_error(
    load: Load, tmp_path: Path
) -> None:
    incomplete = {"MLFLOW_SECRETS_AUTH_ENABLE": "aws-secrets-manager"}
    profiles = load(aws("a", '["a.example"]'), **incomplete)
    assert profiles.names == ("a",)
    assert profiles.env_skipped and "MLFLOW_AWS_SECRET_NAME" in str(profiles.env_skipped[0])
    alone = {"XDG_CONFIG_HOME": str(tmp_path / "none"), **incomplete}
    with pytest.raises(ConfigurationError, match="MLFLOW_AWS_SECRET_NAME"):
        load_profiles(alone, load_general(alone), source=ProfileFile())


# --- reading again when the file changes -------------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _replace(path: Path, text: str) -> None:
    """Write as editors do: a new file renamed over the old one (a new inode)."""
    new = path.with_suffix(".new")
    new.write_text(text, encoding="utf-8")
    os.replace(new, path)


def test_the_file_is_read_again_when_it_changes_at_most_once_a_second(config: Path) -> None:
    clock = Clock()
    reader = ProfileFile(clock=clock)
    env = {CONFIG_VARIABLE: str(config)}
    config.write_text(aws("a", '["a.example"]'), encoding="utf-8")

    first = load_profiles(env, load_general(env), source=reader)
    document = first.document
    assert isinstance(document, ConfigDocument) and first.names == ("a",)

    # Within the second: the edit is not seen, because no stat is taken.
    _replace(config, aws("b", '["b.example"]', "s/b"))
    clock.now += 0.5
    assert load_profiles(env, load_general(env), source=reader).names == ("a",)
    assert reader.unchanged(document)

    # After it: one stat sees the change and the next load uses the new profiles.
    clock.now += 0.6
    assert not reader.unchanged(document)
    reloaded = load_profiles(env, load_general(env), source=reader)
    assert reloaded.names == ("b",)

    # Unchanged file after the window: the same document, not parsed again.
    clock.now += 5
    assert reader.read(config, explicit=True) is reloaded.document


def test_an_in_place_edit_is_seen_too(config: Path) -> None:
    clock = Clock()
    reader = ProfileFile(clock=clock)
    config.write_text(aws("a", '["a.example"]'), encoding="utf-8")
    before = reader.read(config, explicit=True)
    with open(config, "a", encoding="utf-8") as handle:  # same inode, new size
        handle.write(aws("b", '["b.example"]', "s/b"))
    clock.now += 1.0
    after = reader.read(config, explicit=True)
    assert (
        after is not before
        and after.data is not None
        and set(after.data["profiles"])
        == {
            "a",
            "b",
        }
    )


def test_a_broken_edit_is_reported_and_a_fix_is_picked_up(config: Path) -> None:
    clock = Clock()
    reader = ProfileFile(clock=clock)
    config.write_text(aws("a", '["a.example"]'), encoding="utf-8")
    reader.read(config, explicit=True)
    _replace(config, "[profiles.a\n")
    clock.now += 1.0
    for _ in range(2):  # the error is remembered, not parsed again per call
        with pytest.raises(ProfileError, match="line 1"):
            reader.read(config, explicit=True)
    _replace(config, aws("fixed", '["a.example"]'))
    clock.now += 1.0
    fixed = reader.read(config, explicit=True)
    assert fixed.data is not None and list(fixed.data["profiles"]) == ["fixed"]


def test_a_file_created_later_is_found_and_reset_forgets(tmp_path: Path) -> None:
    clock = Clock()
    reader = ProfileFile(clock=clock)
    path = tmp_path / "mlflow-secrets-auth" / "config.toml"
    assert reader.read(path, explicit=False).data is None
    path.parent.mkdir()
    path.write_text(aws("late", '["late.example"]'), encoding="utf-8")
    assert reader.read(path, explicit=False).data is None  # within the second
    reader.reset()
    found = reader.read(path, explicit=False)
    assert found.data is not None and list(found.data["profiles"]) == ["late"]


def test_profile_repr_shows_no_secret(load: Load) -> None:
    (profile,) = load(
        '[profiles.v]\nhosts = ["v.example"]\nbackend = "vault"\n'
        'addr = "https://vault.example:8200"\nsecret_path = "kv/x"\n',
        VAULT_TOKEN="hvs.repr-probe-token",
    ).profiles
    assert isinstance(profile, Profile)
    assert "hvs.repr-probe-token" not in repr(profile)
