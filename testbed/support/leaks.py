"""Searching everything a user could see for secret values."""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterable

import pytest


class LeakCheck:
    """Captures everything the plugin could show (log records at DEBUG, stdout/stderr, exception
    text, repr and traceback) and asserts that no secret value appears in any of it."""

    def __init__(self, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]):
        self._caplog = caplog
        self._capfd = capfd
        # Every logger, not only ours: the SDKs' DEBUG output is user-visible too.
        caplog.set_level(logging.DEBUG)
        caplog.set_level(logging.DEBUG, logger="mlflow_secrets_auth")

    def begin(self) -> None:
        """Forget what test setup logged or printed (creating a secret logs its value)."""
        self._caplog.clear()
        self._capfd.readouterr()

    @property
    def log_text(self) -> str:
        return self._caplog.text

    def texts(self, errors: Iterable[BaseException]) -> list[str]:
        out, err = self._capfd.readouterr()
        texts = [self._caplog.text, out, err]
        for record in self._caplog.records:
            texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
        for error in errors:
            texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
            texts.append(repr(vars(error)))
        return texts

    def assert_clean(
        self,
        secrets: Iterable[str],
        *errors: BaseException,
        patterns: Iterable[re.Pattern[str]] = (),
    ) -> None:
        """No secret (nor any match of ``patterns``: secrets whose values a test cannot know,
        such as the Vault tokens a login issues) in anything captured."""
        plugin_records = [r for r in self._caplog.records if r.name.startswith("mlflow_secrets_")]
        assert plugin_records, "nothing was logged at DEBUG: the check would prove nothing"
        texts = self.texts(errors)
        for secret in secrets:
            for variant in {secret, secret.strip()}:
                assert variant, "empty secret"
                # Say where, never what: the message must not print the secret either.
                where = [i for i, text in enumerate(texts) if variant in text]
                assert not where, f"a secret value leaked into captured text #{where[0]}"
        for pattern in patterns:
            where = [i for i, text in enumerate(texts) if pattern.search(text)]
            assert not where, f"{pattern.pattern!r} matched captured text #{where[0]}"
