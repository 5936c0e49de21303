"""One small exception hierarchy. Every message says what to check and never carries a secret."""

from __future__ import annotations

from typing import Literal

Step = Literal["config", "connect", "login", "read", "parse"]


class SecretsAuthError(RuntimeError):
    """Base class: anything the plugin raises on purpose."""


class ConfigurationError(SecretsAuthError):
    """A setting is missing or malformed; the message names the variable and accepted values."""

    def __init__(self, message: str, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class IncompleteConfigurationError(ConfigurationError):
    """An enabled backend lacks required variables (used to pick the next backend in line)."""

    def __init__(self, backend: str, missing: list[str]) -> None:
        self.backend = backend
        self.missing = tuple(missing)
        names = " and ".join(missing)
        super().__init__(
            f"{backend}: configuration incomplete: {names} not set", variable=missing[0]
        )


class SecretFormatError(SecretsAuthError):
    """The stored secret does not have a usable shape (the value itself is never shown)."""

    def __init__(self, detail: str, fix: str, fits: str | None = None) -> None:
        super().__init__(f"{detail}. {fix}")
        self.detail = detail
        self.fix = fix
        #: The auth mode the secret's shape fits, when it contradicts a strict mode.
        self.fits = fits


class BackendError(SecretsAuthError):
    """A secret store call failed at a named step (connect, login, read, parse)."""

    def __init__(self, backend: str, step: Step, detail: str, fix: str) -> None:
        super().__init__(f"{backend}: {step} failed: {detail}. Check: {fix}")
        self.backend = backend
        self.step = step
        self.detail = detail
        self.fix = fix


class HostNotAllowedError(SecretsAuthError):
    """A request was about to carry credentials to an origin the policy does not allow."""

    def __init__(self, message: str, host: str) -> None:
        super().__init__(message)
        self.host = host


class LoginPageError(SecretsAuthError):
    """An HTML login page, or a redirect to one, answered an MLflow API request.

    An SSO proxy in front of MLflow answers a credential it does not accept this way, not with
    a 401. Raised from the response hook, so MLflow reports it instead of a JSON decoding error.
    """

    def __init__(self, host: str, request: str, answer: str, reason: str, fix: str) -> None:
        super().__init__(
            f"an HTML login page answered instead of the MLflow API: {host} answered {request} "
            f"with {answer}: {reason}. Check {fix}"
        )
        self.host = host
        self.answer = answer
