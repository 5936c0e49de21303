"""Secret payload → a credential ready to put in a header (SPEC §4).

The value lives only inside :class:`Credential`; its repr, str and every error raised here show
the kind, a length or a fingerprint, never the value.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from .errors import SecretFormatError
from .log import register_secret

if TYPE_CHECKING:
    from .backends.base import AuthMode

CredentialKind = Literal["bearer", "basic"]
# A per-process key: fingerprints tell "same or different credential" within one process, and
# cannot be used to guess a low-entropy password offline.
_FINGERPRINT_KEY = os.urandom(16)
_FORBIDDEN = {chr(c) for c in range(32)} | {"\x7f"}
# Claims sets are small; a longer payload is not a token this plugin reads a claim from.
_MAX_JWT_PAYLOAD = 16_384


def fingerprint(value: str) -> str:
    return hmac.new(_FINGERPRINT_KEY, value.encode(), hashlib.sha256).hexdigest()[:12]


def jwt_expiry(token: str) -> float | None:
    """The ``exp`` claim of a JWT (JWS compact form), in epoch seconds; None for anything else.

    The claim is read so that a token is replaced before it stops working (SPEC §4). The
    signature is not verified: the server that receives the token does that, and a wrong
    ``exp`` can only make this plugin fetch earlier. Nothing here logs or raises: a token that
    is not a JWT, or has no usable ``exp``, is simply a token without a known expiry.
    """
    parts = token.split(".")
    if len(parts) != 3 or not parts[1] or len(parts[1]) > _MAX_JWT_PAYLOAD:
        return None
    segment = parts[1]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        claims = json.loads(raw)
    except (ValueError, RecursionError):  # not base64url (binascii.Error), UTF-8 or JSON
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        seconds = float(exp)
    except OverflowError:  # an integer beyond any date
        return None
    return seconds if math.isfinite(seconds) else None


class Credential:
    """A bearer token or username/password, with its header values precomputed.

    ``expires_at`` (wall-clock epoch seconds, or None) is when the credential itself stops
    working: a bearer JWT's ``exp`` claim, lowered by the store's own expiry through
    :meth:`cap_expiry`. The cache refreshes before it and never serves the credential past it.
    """

    __slots__ = ("authorization", "expires_at", "fingerprint", "kind", "raw", "username")

    def __init__(self, kind: CredentialKind, secret: str, username: str | None = None) -> None:
        self.kind = kind
        self.username = username
        self.expires_at: float | None = None
        if kind == "basic":
            pair = f"{username}:{secret}".encode()
            encoded = base64.b64encode(pair).decode("ascii")
            self.authorization = f"Basic {encoded}"
            self.raw = encoded  # the value for a custom header: no scheme prefix
            register_secret(secret)
            register_secret(encoded)
        else:
            try:
                secret.encode("latin-1")
            except UnicodeEncodeError:
                raise SecretFormatError(
                    "the token has characters that an HTTP header cannot carry",
                    "store an ASCII token",
                ) from None
            self.authorization = f"Bearer {secret}"
            self.raw = secret
            register_secret(secret)
            self.expires_at = jwt_expiry(secret)
        self.fingerprint = fingerprint(self.authorization)

    def cap_expiry(self, expires_at: float | None) -> None:
        """Lower ``expires_at`` to a store-given expiry (a lease, an exec ``expires_at``).

        Called once, by the source that fetched the credential, before anyone else sees it.
        """
        if expires_at is not None and (self.expires_at is None or expires_at < self.expires_at):
            self.expires_at = float(expires_at)

    def header_value(self, custom_header: bool) -> str:
        """``Authorization`` value, or the raw value for a custom header (no scheme prefix)."""
        return self.raw if custom_header else self.authorization

    def __repr__(self) -> str:
        user = f", username={self.username!r}" if self.username else ""
        return f"Credential(kind={self.kind}{user}, fingerprint={self.fingerprint})"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("credentials are not picklable")


def _clean(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise SecretFormatError(
            f"the secret's {what} is a {type(value).__name__}, not a string",
            "store it as a JSON string value",
        )
    text = value.strip()
    if not text:
        raise SecretFormatError(f"the secret's {what} is empty", f"store a non-empty {what}")
    bad = sum(1 for c in text if c in _FORBIDDEN)
    if bad:
        raise SecretFormatError(
            f"the secret's {what} contains {bad} control character(s) (such as a line break) "
            "inside it",
            f"store the {what} on a single line without control characters",
        )
    return text


_MODE_FIX = (
    "set the backend's AUTH_MODE variable (e.g. MLFLOW_VAULT_AUTH_MODE) to auto (the default)"
)


def _split_user_pass(text: str, what: str) -> Credential:
    username, sep, password = text.partition(":")
    if not sep or not username or not password:
        raise SecretFormatError(
            f"basic mode needs the {what} in the form user:pass, but it has no "
            f"{'colon' if not sep else 'user or password part'}: the secret fits bearer mode",
            f"{_MODE_FIX} or to bearer, or store "
            '{"username": "...", "password": "..."} for basic',
            fits="bearer",
        )
    return Credential("basic", password.strip(), username=username.strip())


def _basic(data: Mapping[str, object]) -> Credential:
    username = _clean(data["username"], "username")
    password = _clean(data["password"], "password")
    if ":" in username:
        raise SecretFormatError(
            "the secret's username contains ':', which basic authentication cannot carry",
            "use a username without ':'",
        )
    return Credential("basic", password, username=username)


def _from_mapping(data: Mapping[str, object], mode: AuthMode) -> Credential:
    """auto: username and password → basic, else the token → bearer; strict modes take the
    fields of their own kind and say which mode fits when only the other kind is there."""
    pair = "username" in data and "password" in data
    if pair and mode in ("auto", "basic"):
        return _basic(data)
    if "token" in data:
        token = _clean(data["token"], "token")
        return _split_user_pass(token, "token") if mode == "basic" else Credential("bearer", token)
    if pair:  # bearer mode
        raise SecretFormatError(
            "the secret holds a username and password, which fits basic mode, but the auth "
            "mode is bearer",
            f"{_MODE_FIX} or to basic, or store " + '{"token": "..."}',
            fits="basic",
        )
    if "username" in data or "password" in data:
        present, missing = (
            ("username", "password") if "username" in data else ("password", "username")
        )
        raise SecretFormatError(
            f"the secret has {present} but no {missing}", "store both username and password"
        )
    keys = ", ".join(sorted(map(str, data))) or "none"
    raise SecretFormatError(
        f"the secret has neither 'token' nor 'username' and 'password' (keys found: {keys})",
        'store {"token": "..."} for bearer or {"username": "...", "password": "..."} for basic',
    )


def parse_secret(payload: str | bytes | Mapping[str, object], mode: AuthMode) -> Credential:
    """Interpret a stored secret: JSON object, or a plain token / ``user:pass`` string.

    In ``auto`` mode (the default) a username and password make basic credentials and anything
    else a bearer token; ``bearer`` and ``basic`` are strict (SPEC §4).
    """
    if isinstance(payload, bytes | bytearray):
        try:
            payload = bytes(payload).decode("utf-8")
        except UnicodeDecodeError:
            raise SecretFormatError(
                "the binary secret is not UTF-8 text", "store the secret as UTF-8 text or JSON"
            ) from None
    if isinstance(payload, Mapping):
        return _from_mapping(payload, mode)
    if not isinstance(payload, str):
        raise SecretFormatError(
            f"the secret is a {type(payload).__name__}", "store a JSON object or a string"
        )
    text = payload.strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError as error:
            where = getattr(error, "msg", "invalid JSON")
            raise SecretFormatError(
                f"the secret looks like JSON but does not parse ({where}, at character "
                f"{getattr(error, 'pos', '?')})",
                "fix the JSON, or store a plain token",
            ) from None
        if isinstance(data, dict):
            return _from_mapping(data, mode)
    token = _clean(text, "user:pass value" if mode == "basic" else "token")
    return _split_user_pass(token, "value") if mode == "basic" else Credential("bearer", token)


def describe_payload(payload: str | bytes | Mapping[str, object]) -> dict[str, object]:
    """Shape facts for diagnostics: kind, length, keys, surrounding white space, never values."""
    if isinstance(payload, Mapping):
        padded = sorted(str(k) for k, v in payload.items() if isinstance(v, str) and v != v.strip())
        return {
            "kind": "mapping",
            "keys": sorted(map(str, payload)),
            "fields_with_surrounding_whitespace": padded,
        }
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return {
        "kind": "binary" if isinstance(payload, bytes) else "string",
        "length": len(text),
        "surrounding_whitespace": text != text.strip(),
    }
