"""Secret formats (SPEC §4): shapes, white space, mode mismatches, and no value in any error."""

from __future__ import annotations

import base64
import pickle

import pytest

from mlflow_secrets_auth.credentials import describe_payload, parse_secret
from mlflow_secrets_auth.errors import SecretFormatError

SECRET = "p@ss:w/o%rd"


def test_json_token_is_bearer_and_stripped() -> None:
    cred = parse_secret('{"token": "abc.def\\n"}', "bearer")
    assert cred.header_value(custom_header=False) == "Bearer abc.def"
    assert cred.header_value(custom_header=True) == "abc.def"


def test_plain_string_with_trailing_newline_is_a_token() -> None:
    assert parse_secret("  tok-123\n", "bearer").authorization == "Bearer tok-123"


def test_username_password_is_basic() -> None:
    cred = parse_secret({"username": "alice", "password": f" {SECRET}\n"}, "basic")
    expected = base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert cred.authorization == f"Basic {expected}"
    assert cred.username == "alice"


def test_basic_mode_accepts_user_pass_token_and_plain_string() -> None:
    for payload in ('{"token": "bob:pw:with:colons"}', "bob:pw:with:colons\n"):
        cred = parse_secret(payload, "basic")
        decoded = base64.b64decode(cred.authorization.split()[1]).decode()
        assert decoded == "bob:pw:with:colons"


def test_bytes_payload() -> None:
    assert parse_secret(b'{"token": "binary-tok"}', "bearer").authorization == "Bearer binary-tok"


def _message(payload: object, mode: str) -> str:
    with pytest.raises(SecretFormatError) as info:
        parse_secret(payload, mode)  # type: ignore[arg-type]
    return str(info.value)


def test_mode_contradiction_names_the_fix_and_hides_the_value() -> None:
    message = _message({"username": "alice", "password": SECRET}, "bearer")
    assert "auth mode is bearer" in message and "basic" in message
    assert SECRET not in message


def test_basic_mode_without_colon() -> None:
    message = _message("notapair-secret-value", "basic")
    assert "user:pass" in message
    assert "notapair-secret-value" not in message


def test_missing_keys_lists_keys_not_values() -> None:
    message = _message({"api_key": SECRET}, "bearer")
    assert "api_key" in message and SECRET not in message


def test_password_without_username() -> None:
    message = _message({"password": SECRET}, "basic")
    assert "no username" in message and SECRET not in message


def test_broken_json_hides_the_value() -> None:
    message = _message('{"token": "' + SECRET, "bearer")
    assert "does not parse" in message and SECRET not in message


@pytest.mark.parametrize("payload", ["", "   \n", '{"token": ""}'])
def test_empty(payload: str) -> None:
    assert "empty" in _message(payload, "bearer")


def test_interior_line_break_is_rejected_without_echo() -> None:
    message = _message("abc\r\nX-Injected: 1", "bearer")
    assert "control character" in message and "X-Injected" not in message


def test_non_latin1_token_rejected_without_echo() -> None:
    message = _message("tok€n-value", "bearer")
    assert "tok€n" not in message


def test_repr_str_and_pickle_never_show_the_value() -> None:
    cred = parse_secret({"username": "alice", "password": SECRET}, "basic")
    for text in (repr(cred), str(cred), f"{cred}"):
        assert SECRET not in text and cred.authorization not in text
        assert cred.fingerprint in text
    with pytest.raises(TypeError):
        pickle.dumps(cred)


def test_fingerprint_distinguishes_values() -> None:
    assert (
        parse_secret("a-token", "bearer").fingerprint
        != parse_secret("b-token", "bearer").fingerprint
    )
    assert (
        parse_secret("a-token", "bearer").fingerprint
        == parse_secret("a-token\n", "bearer").fingerprint
    )


def test_describe_payload_reports_shape_only() -> None:
    assert describe_payload("tok\n") == {
        "kind": "string",
        "length": 4,
        "surrounding_whitespace": True,
    }
    assert describe_payload({"token": SECRET + "\n", "u": "x"}) == {
        "kind": "mapping",
        "keys": ["token", "u"],
        "fields_with_surrounding_whitespace": ["token"],
    }


# -- auto mode (the default) and the strict modes ------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"username": "alice", "password": SECRET}, "basic"),
        ('{"username": "alice", "password": "pw-1234"}', "basic"),
        ({"token": "abc.def"}, "bearer"),
        ({"token": "bob:pw-1234"}, "bearer"),  # a token, whatever it contains
        ("plain-token-1234\n", "bearer"),
        ("bob:pw-1234", "bearer"),
        ({"token": "t-1234", "username": "alice", "password": "pw-1234"}, "basic"),
    ],
)
def test_auto_follows_the_secrets_shape(payload: object, kind: str) -> None:
    credential = parse_secret(payload, "auto")  # type: ignore[arg-type]
    assert credential.kind == kind


def test_strict_modes_take_the_fields_of_their_own_kind() -> None:
    both = {"token": "t-1234", "username": "alice", "password": "pw-1234"}
    assert parse_secret(both, "bearer").authorization == "Bearer t-1234"
    assert parse_secret(both, "basic").username == "alice"


@pytest.mark.parametrize(
    ("payload", "mode", "fits"),
    [
        ({"username": "alice", "password": SECRET}, "bearer", "basic"),
        ({"token": "no-colon-" + SECRET.replace(":", "")}, "basic", "bearer"),
        ("plain-" + SECRET.replace(":", ""), "basic", "bearer"),
    ],
)
def test_a_strict_mode_mismatch_names_the_mode_that_fits(
    payload: object, mode: str, fits: str
) -> None:
    with pytest.raises(SecretFormatError) as info:
        parse_secret(payload, mode)  # type: ignore[arg-type]
    error = info.value
    assert error.fits == fits
    assert f"fits {fits} mode" in error.detail
    assert f"to auto (the default) or to {fits}" in error.fix
    assert "MLFLOW_VAULT_AUTH_MODE" in error.fix
    assert SECRET.replace(":", "") not in str(error)


@pytest.mark.parametrize("payload", [{"username": "alice"}, {"password": SECRET}])
def test_auto_with_half_a_pair_names_the_missing_half(payload: dict[str, str]) -> None:
    message = _message(payload, "auto")
    assert "but no" in message and SECRET not in message
