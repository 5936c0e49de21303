"""A credential's own expiry: a bearer JWT's ``exp`` claim and a store-given expiry (SPEC §4, §6).

The claim is decoded, never verified; a token that is not a JWT has no known expiry. The source
refuses a credential that has already expired, with an error that names the backend and the step
and never shows the token.
"""

from __future__ import annotations

import base64
import json
import logging
import time

import pytest

from mlflow_secrets_auth.backends.base import FetchedSecret
from mlflow_secrets_auth.backends.vault_settings import VaultSettings
from mlflow_secrets_auth.cache import CredentialCache
from mlflow_secrets_auth.credentials import Credential, jwt_expiry
from mlflow_secrets_auth.errors import BackendError
from mlflow_secrets_auth.source import CredentialSource


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_jwt(claims: object, signature: str = "c2lnbmF0dXJl") -> str:
    """An unsigned-looking JWT: what the plugin reads never depends on the signature."""
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    return f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"


@pytest.mark.parametrize("exp", [1_700_000_000, 1_700_000_000.5])
def test_jwt_exp_claim_is_read(exp: float) -> None:
    assert jwt_expiry(make_jwt({"sub": "ci", "exp": exp})) == exp


@pytest.mark.parametrize(
    "token",
    [
        "plain-opaque-token",
        "hvs.CAESIJ.part",  # three dot-separated parts that are not base64url JSON
        "a.b",
        "a..c",
        make_jwt({"sub": "no exp"}),
        make_jwt({"exp": "1700000000"}),  # a string is not a NumericDate
        make_jwt({"exp": True}),
        make_jwt({"exp": 10**400}),
        make_jwt(["exp", 1700000000]),
        make_jwt({"exp": 1_700_000_000}).replace(".", ".x.", 1),  # four parts: not JWS compact
        "x." + b64url(b"\xff\xfe not utf-8") + ".y",
        "x." + b64url(b"[" * 12_000) + ".y",  # nested past the recursion limit
        "x." + "e30" * 6000 + ".y",  # longer than any claims set
    ],
)
def test_anything_else_has_no_known_expiry(token: str) -> None:
    assert jwt_expiry(token) is None


def test_bearer_jwt_credential_carries_its_exp_and_basic_does_not() -> None:
    token = make_jwt({"exp": 1_700_000_123})
    assert Credential("bearer", token).expires_at == 1_700_000_123
    assert Credential("basic", token, username="u").expires_at is None
    assert Credential("bearer", "opaque").expires_at is None


def test_a_store_given_expiry_caps_the_claim_but_never_extends_it() -> None:
    credential = Credential("bearer", make_jwt({"exp": 2000}))
    credential.cap_expiry(3000)
    assert credential.expires_at == 2000
    credential.cap_expiry(1500)
    assert credential.expires_at == 1500
    credential.cap_expiry(None)
    assert credential.expires_at == 1500


class OneSecret:
    """A store double: one payload with an optional store-given expiry; counts reads."""

    name = "vault"

    def __init__(self, payload: str, expires_at: float | None = None) -> None:
        self.payload, self.expires_at, self.reads = payload, expires_at, 0

    def fetch(self) -> FetchedSecret:
        self.reads += 1
        return FetchedSecret(self.payload, location="test", expires_at=self.expires_at)


def source_for(backend: OneSecret, cache: CredentialCache | None = None) -> CredentialSource:
    settings = VaultSettings(addr="http://127.0.0.1:1", secret_path="secret/x", ttl_sec=300)
    return CredentialSource(backend, settings, cache or CredentialCache())  # type: ignore[arg-type]


def test_source_passes_the_store_given_expiry_to_the_cache() -> None:
    store = OneSecret("opaque-token", expires_at=time.time() + 3600)
    credential = source_for(store).get()
    assert credential.expires_at == store.expires_at


def test_store_expiry_shortens_the_cache_lifetime() -> None:
    """A store-given expiry 0.3 s away, TTL 300: the second call after it reads again."""
    store = OneSecret("opaque-token", expires_at=time.time() + 0.3)
    source = source_for(store)
    source.get()
    time.sleep(0.35)
    store.expires_at = time.time() + 3600
    source.get()
    assert store.reads == 2


@pytest.mark.parametrize("by", ["jwt", "store"])
def test_an_already_expired_credential_is_refused_with_a_clear_error(
    by: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mlflow_secrets_auth")
    if by == "jwt":
        token = make_jwt({"sub": "job", "exp": int(time.time()) - 5})
        store = OneSecret(json.dumps({"token": token}))
    else:
        token = "opaque-but-expired-token"
        store = OneSecret(token, expires_at=time.time() - 5)
    with pytest.raises(BackendError) as info:
        source_for(store).get()
    error = info.value
    assert (error.backend, error.step) == ("vault", "read")
    assert "already expired" in str(error)
    assert ("JWT exp claim" if by == "jwt" else "store's expiry") in str(error)
    for text in (str(error), repr(error), caplog.text):
        assert token not in text
        assert token.split(".")[1 if by == "jwt" else 0] not in text
