"""Allowlist parsing and matching (SPEC §5)."""

from __future__ import annotations

import pytest

from mlflow_secrets_auth.errors import HostNotAllowedError
from mlflow_secrets_auth.hosts import HostPolicy, default_rules, parse_allowed_hosts, parse_rule


def policy(raw: str | None, allow_http: bool = False, uris=(None, None)) -> HostPolicy:
    rules = None if raw is None else parse_allowed_hosts(raw)
    return HostPolicy(rules, allow_http, uris=lambda: uris)


def test_rule_parsing() -> None:
    assert str(parse_rule("MLflow.Example.com")) == "mlflow.example.com"
    assert parse_rule("host:5000").port == 5000
    assert parse_rule("[::1]:8080").pattern == "::1"
    assert str(parse_rule("[::1]:8080")) == "[::1]:8080"


@pytest.mark.parametrize(
    ("raw", "url", "allowed"),
    [
        ("mlflow.example.com", "https://mlflow.example.com/api", True),
        ("mlflow.example.com", "https://MLFLOW.example.com:8443/api", True),
        ("mlflow.example.com", "https://evil.example.com/api", False),
        ("*.corp.example", "https://a.b.corp.example/x", True),
        ("*.corp.example", "https://corp.example.evil.io/x", False),
        ("*.corp.example", "https://corp.example/x", False),
        ("mlflow.example.com:443", "https://mlflow.example.com/x", True),
        ("mlflow.example.com:443", "https://mlflow.example.com:8443/x", False),
        ("ml-?.example", "https://ml-1.example/x", True),
        ("*", "https://anything.example/x", True),
        ("localhost:5000", "http://localhost:5000/x", True),
        ("localhost:5000", "http://localhost:5001/x", False),
    ],
)
def test_matching(raw: str, url: str, allowed: bool) -> None:
    p = policy(raw)
    if allowed:
        p.check(url)
    else:
        with pytest.raises(HostNotAllowedError) as info:
            p.check(url)
        assert "MLFLOW_SECRETS_ALLOWED_HOSTS" in str(info.value)


def test_userinfo_trick_uses_real_host() -> None:
    with pytest.raises(HostNotAllowedError) as info:
        policy("good.example").check("https://good.example@evil.example/x")
    assert info.value.host == "evil.example"


def test_plain_http_only_to_loopback_unless_opted_in() -> None:
    p = policy("*")
    p.check("http://127.0.0.1:5000/x")
    p.check("http://localhost/x")
    p.check("http://[::1]:8080/x")
    with pytest.raises(HostNotAllowedError, match="MLFLOW_SECRETS_ALLOW_HTTP"):
        p.check("http://mlflow.example.com/x")
    policy("*", allow_http=True).check("http://mlflow.example.com/x")


def test_default_allowlist_is_tracking_and_registry_origins() -> None:
    uris = ("https://track.example:5000", "https://registry.example")
    p = policy(None, uris=uris)
    p.check("https://track.example:5000/api")
    p.check("https://registry.example/api")
    p.check("https://registry.example:443/api")
    for other in ("https://other.example/api", "https://track.example:443/api"):
        with pytest.raises(HostNotAllowedError) as info:
            p.check(other)  # another host, or another port on the tracking host
        assert "unset" in str(info.value) and "track.example:5000" in str(info.value)
        assert "MLFLOW_SECRETS_ALLOWED_HOSTS" in str(info.value)


def test_names_under_localhost_are_not_loopback() -> None:
    p = policy("*")
    with pytest.raises(HostNotAllowedError, match="plain http"):
        p.check("http://mlflow.localhost:5000/x")


def test_plain_http_to_loopback_through_a_proxy_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    p = policy("*")
    with pytest.raises(HostNotAllowedError) as info:
        p.check("http://127.0.0.1:5000/x")
    assert "proxy" in str(info.value) and "NO_PROXY" in str(info.value)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    # The runtime builds a new policy when a proxy variable changes (it watches them).
    policy("*").check("http://127.0.0.1:5000/x")
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("ALL_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("HTTP_PROXY")
    with pytest.raises(HostNotAllowedError, match="proxy"):
        policy("*").check("http://localhost:5000/x")
    policy("*", allow_http=True).check("http://localhost:5000/x")


def test_default_allowlist_follows_tracking_uri_changes() -> None:
    current = ["https://one.example"]
    p = HostPolicy(None, False, uris=lambda: (current[0], None))
    p.check("https://one.example/x")
    current[0] = "https://two.example"
    with pytest.raises(HostNotAllowedError):
        p.check("https://one.example/x")
    p.check("https://two.example/x")


def test_non_http_tracking_uri_allows_nothing() -> None:
    assert default_rules("sqlite:///mlflow.db", "databricks") == ()
    with pytest.raises(HostNotAllowedError, match="not http"):
        policy(None, uris=("sqlite:///x.db", None)).check("https://x.example/")


def test_non_http_scheme_refused() -> None:
    with pytest.raises(HostNotAllowedError, match="non-HTTP"):
        policy("*").check("ftp://x.example/file")
