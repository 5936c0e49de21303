"""The contract kit itself (SPEC §12): each check fails for a store that breaks its rule.

The stores here are deliberately wrong, each in one way; a kit that let them pass would be
no protection for the stores that use it.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import pytest

from mlflow_secrets_auth.backends.base import (
    CommonSettings,
    FetchedSecret,
    SecretStore,
    StoreSettings,
    Variable,
)
from mlflow_secrets_auth.errors import BackendError, ConfigurationError
from mlflow_secrets_auth.testing import (
    check_declarations,
    check_fetch_is_bounded,
    check_no_payload_leak,
    check_reads_only_declared,
    check_settings_errors,
    check_store,
)

PAYLOAD = "payload-" + uuid.uuid4().hex


@dataclass(frozen=True, kw_only=True)
class ToySettings(StoreSettings):
    value: str
    delay: float = 0.0

    @property
    def identity(self) -> str:
        return "toy"


class GoodStore(SecretStore[ToySettings]):
    """Returns MLFLOW_TOY_VALUE's payload; fails with a clean error when it is 'fail'."""

    name = "toy"
    prefix = "MLFLOW_TOY"
    variables = (
        Variable("MLFLOW_TOY_VALUE", "value", "which canned payload"),
        Variable("MLFLOW_TOY_DELAY", "delay", "seconds to wait", "0"),
    )

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> ToySettings:
        value = env.get("MLFLOW_TOY_VALUE")
        if value not in ("ok", "fail"):
            raise ConfigurationError("MLFLOW_TOY_VALUE must be ok or fail", "MLFLOW_TOY_VALUE")
        raw_delay = env.get("MLFLOW_TOY_DELAY") or "0"
        try:
            delay = float(raw_delay)
        except ValueError:
            raise ConfigurationError(
                "MLFLOW_TOY_DELAY is not a number", "MLFLOW_TOY_DELAY"
            ) from None
        return ToySettings(**common.kwargs(), value=value, delay=delay)

    def fetch(self) -> FetchedSecret:
        deadline = time.monotonic() + min(self.settings.delay, self.settings.timeout_sec)
        while time.monotonic() < deadline:
            time.sleep(0.01)
        if self.settings.delay > self.settings.timeout_sec:
            raise BackendError(self.name, "connect", "the toy store timed out", "nothing")
        if self.settings.value == "fail":
            raise BackendError(self.name, "read", "no such toy secret", "MLFLOW_TOY_VALUE")
        return FetchedSecret({"token": PAYLOAD})


OK = {"MLFLOW_TOY_VALUE": "ok"}
FAIL = {"MLFLOW_TOY_VALUE": "fail"}


def test_a_well_behaved_store_passes_every_check() -> None:
    check_store(
        GoodStore, OK, PAYLOAD, failing_env=FAIL, hanging_env={**OK, "MLFLOW_TOY_DELAY": "60"}
    )


class LeaksInItsError(GoodStore):
    def fetch(self) -> FetchedSecret:
        if self.settings.value == "fail":
            raise BackendError(self.name, "read", f"wrong secret {PAYLOAD}", "nothing")
        return super().fetch()


class LeaksInALogRecord(GoodStore):
    def fetch(self) -> FetchedSecret:
        logging.getLogger("toy.sdk").debug("response body: %s", PAYLOAD)
        return super().fetch()


class LeaksInItsRepr(GoodStore):
    def __repr__(self) -> str:
        return f"LeaksInItsRepr({PAYLOAD})"


@pytest.mark.parametrize(
    ("store", "where"),
    [
        (LeaksInItsError, "the failure's message"),
        (LeaksInALogRecord, "log record"),
        (LeaksInItsRepr, "repr(store)"),
    ],
)
def test_a_store_that_leaks_its_payload_fails_the_kit(store: type[GoodStore], where: str) -> None:
    with pytest.raises(AssertionError) as failed:
        check_no_payload_leak(store, OK, PAYLOAD, failing_env=FAIL)
    assert where in str(failed.value)
    assert PAYLOAD not in str(failed.value)  # the kit's own message never shows it


class ReadsUndeclared(GoodStore):
    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> ToySettings:
        env.get("MLFLOW_TOY_SECRET_REGION")
        return super().load_settings(env, common)


def test_a_loader_that_reads_an_undeclared_variable_fails_the_kit() -> None:
    with pytest.raises(AssertionError, match="MLFLOW_TOY_SECRET_REGION"):
        check_reads_only_declared(ReadsUndeclared, OK)


class EchoesTheValue(GoodStore):
    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> ToySettings:
        value = env.get("MLFLOW_TOY_VALUE")
        if value not in ("ok", "fail"):
            raise ConfigurationError(f"MLFLOW_TOY_VALUE={value!r} is wrong", "MLFLOW_TOY_VALUE")
        return super().load_settings(env, common)


class RaisesSomethingElse(GoodStore):
    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> ToySettings:
        if env.get("MLFLOW_TOY_VALUE") not in ("ok", "fail"):
            raise KeyError("MLFLOW_TOY_VALUE")
        return super().load_settings(env, common)


@pytest.mark.parametrize(
    ("store", "words"), [(EchoesTheValue, "echoes"), (RaisesSomethingElse, "KeyError")]
)
def test_settings_errors_must_name_the_variable_and_hide_the_value(
    store: type[GoodStore], words: str
) -> None:
    with pytest.raises(AssertionError, match=words):
        check_settings_errors(store, OK)


class NeverReturns(GoodStore):
    def fetch(self) -> FetchedSecret:
        time.sleep(30)
        return super().fetch()


def test_a_fetch_that_ignores_the_time_bound_fails_the_kit() -> None:
    with pytest.raises(AssertionError, match="still running"):
        check_fetch_is_bounded(NeverReturns, OK, timeout_sec=0.1)


class BadDeclarations(GoodStore):
    name = "Toy_Store"


class SecretWithProfileKey(GoodStore):
    variables = (Variable("MLFLOW_TOY_TOKEN", "token", "the token itself", secret=True),)


@pytest.mark.parametrize(
    ("store", "words"), [(BadDeclarations, "lower case"), (SecretWithProfileKey, "config file")]
)
def test_declarations_are_checked(store: type[GoodStore], words: str) -> None:
    with pytest.raises(AssertionError, match=words):
        check_declarations(store)


def test_the_kit_does_not_touch_the_process_environment() -> None:
    before = dict(os.environ)
    check_store(GoodStore, OK, PAYLOAD, failing_env=FAIL)
    assert dict(os.environ) == before
