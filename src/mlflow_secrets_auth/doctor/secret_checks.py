"""Steps 5-6: does the fetched secret fit the auth mode, and does it make a valid header?

Both look at the secret's value, so both describe it by kind, key names and lengths only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ..backends.base import FetchedSecret, Payload
from ..credentials import describe_payload, parse_secret
from ..errors import SecretFormatError
from ..modes import mode_variable, resolved_mode
from ..settings import BackendSettings
from .model import Check, _Run


def _json_object(payload: Payload) -> Mapping[str, object] | None:
    if isinstance(payload, Mapping):
        return payload
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else str(payload)
    if text.strip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        if isinstance(data, dict):
            return data
    return None


def _shape(payload: Payload) -> str:
    """The stored secret's shape in words: kinds, key names and lengths only."""
    facts = describe_payload(payload)
    data = _json_object(payload)
    if isinstance(payload, Mapping):
        keys = ", ".join(sorted(map(str, payload))) or "none"
        return f"a key/value secret with keys {keys}"
    kind = "binary" if facts.get("kind") == "binary" else "text"
    if data is not None:
        keys = ", ".join(sorted(map(str, data))) or "none"
        return f"JSON {kind} ({facts.get('length')} characters) with keys {keys}"
    return f"a plain {kind} value of {facts.get('length')} characters"


def _shape_word(payload: Payload) -> str:
    """What ``auto`` mode looked at: a username/password pair, a token field or a plain string."""
    data = _json_object(payload)
    if data is None:
        return "plain string"
    if "username" in data and "password" in data:
        return "username/password"
    return "token"


def _padded_fields(payload: Payload) -> list[str]:
    """Which parts of the stored secret have surrounding white space (field note 4)."""
    data = _json_object(payload)
    padded: list[str] = []
    if data is not None:
        for key in ("token", "username", "password"):
            value = data.get(key)
            if isinstance(value, str) and value != value.strip():
                padded.append(_padding_words(key, value))
    if not isinstance(payload, Mapping):
        facts = describe_payload(payload)
        if facts.get("surrounding_whitespace") and (data is None or not padded):
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
            padded.append(_padding_words("value", str(text)))
    return padded


def _padding_words(what: str, value: str) -> str:
    if value.endswith(("\n", "\r")):
        return f"the {what} ends with a line break"
    return f"the {what} has surrounding white space"


def _secret_format(run: _Run, settings: BackendSettings, fetched: FetchedSecret) -> None:
    mode = settings.auth_mode
    mode_var = mode_variable(settings.backend_name)
    shape = _shape(fetched.payload)
    try:
        credential = parse_secret(fetched.payload, mode)
    except SecretFormatError as error:
        if error.fits is not None:
            other = (
                '{"token": "..."}'
                if error.fits == "basic"
                else '{"username": "...", "password": "..."}'
            )
            fix = (
                f"set {mode_var}={error.fits}, or unset it (auto, the default, uses "
                f"{error.fits} for this secret); or store {other} instead"
            )
        else:
            fix = error.fix
        run.add(
            Check(
                "secret_format",
                "Secret format",
                "failed",
                f"the stored secret is {shape}; configured {mode} mode ({mode_var}): "
                f"{error.detail}",
                fix,
            )
        )
        run.blocked = "the secret's format does not fit the auth mode"
        return
    run.credential = credential
    what = (
        f"basic credentials for user {credential.username}"
        if credential.kind == "basic"
        else "a bearer token"
    )
    why = resolved_mode(
        run.env, settings.backend_name, mode, _shape_word(fetched.payload), credential.kind
    )
    detail = f"the stored secret is {shape}; parsed as {what} (auth mode {why})"
    padded = _padded_fields(fetched.payload)
    token_has_colon = credential.kind == "bearer" and ":" in credential.header_value(
        custom_header=True
    )
    if padded:
        run.add(
            Check(
                "secret_format",
                "Secret format",
                "warning",
                f"{detail}; {', '.join(padded)}: the plugin strips it, but other tools that "
                "read this secret may not",
                "store the value without surrounding white space (e.g. `printf %s`, not `echo`)",
            )
        )
    elif token_has_colon:
        run.add(
            Check(
                "secret_format",
                "Secret format",
                "warning",
                f"{detail}; the token contains ':', which is what a user:pass value looks like",
                'if it is a user name and password, store {"username": "...", "password": "..."} '
                f"(or set {mode_var}=basic); if it is a token, nothing to do",
            )
        )
    else:
        run.add(Check("secret_format", "Secret format", "passed", detail))


def _auth_header(run: _Run) -> None:
    import requests.utils
    from requests.exceptions import InvalidHeader

    assert run.credential is not None and run.general is not None
    credential = run.credential
    custom = run.general.header_name is not None
    header = run.general.header_name or "Authorization"
    value = credential.header_value(custom)
    try:
        requests.utils.check_header_validity((header, value))
    except InvalidHeader:  # its message quotes the value: say it in our own words
        run.add(
            Check(
                "auth_header",
                "Auth header built",
                "failed",
                f"the {header} header value is not valid HTTP (line breaks or leading spaces)",
                "store the credential on one line without surrounding white space",
            )
        )
        run.credential = None
        run.blocked = "the header could not be built"
        return
    if custom:
        form = "the raw token (no 'Bearer ' prefix)" if credential.kind == "bearer" else "raw"
        shown = f"{header}: {form}, {len(value)} characters"
    elif credential.kind == "basic":
        shown = f"{header}: Basic <{len(value) - 6} characters>, user {credential.username}"
    else:
        shown = f"{header}: Bearer <{len(value) - 7} characters>"
    run.add(
        Check(
            "auth_header",
            "Auth header built",
            "passed",
            f"{shown} (fingerprint {credential.fingerprint}; the value is never shown)",
        )
    )
