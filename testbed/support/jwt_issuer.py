"""A JWT issuer for tests: an RSA key pair generated on the spot, RS256 signing, no network.

Vault's `jwt` auth method is given the public key (`jwt_validation_pubkeys`) and verifies what
this issuer signs; so do the Kubernetes service-account tokens of `support.kubernetes`.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_rs256(key: rsa.RSAPrivateKey, claims: Mapping[str, Any]) -> str:
    """A compact JWS (header.claims.signature) of ``claims``, signed with ``key``."""
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(dict(claims)).encode())}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


class JwtIssuer:
    """Signs CI-job-like JWTs (`iss`, `sub`, `aud`, `iat`, `nbf`, `exp`, `jti`)."""

    def __init__(self, issuer: str = "https://ci.example.test") -> None:
        self.issuer = issuer
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_pem = (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def token(self, subject: str, audience: str, *, lifetime: float = 300.0, **claims: Any) -> str:
        now = int(time.time())
        return sign_rs256(
            self._key,
            {
                "iss": self.issuer,
                "sub": subject,
                "aud": audience,
                "iat": now,
                "nbf": now - 5,
                "exp": now + int(lifetime),
                "jti": uuid.uuid4().hex,
                **claims,
            },
        )
