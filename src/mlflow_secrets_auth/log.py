"""The package logger: a NullHandler, level from MLFLOW_SECRETS_LOG_LEVEL, secret redaction.

``MLFLOW_SECRETS_LOG_LEVEL`` alone must show the plugin's steps inside a training job (SPEC §10),
where nobody configured logging: with the variable set, a fallback handler writes the package's
records to stderr, but only while the application has no handler of its own on the way (the
root logger, or any logger between it and the record's). The decision is made per record, so an
application that configures logging later takes over at once and nothing is shown twice.

Code here never logs secret values; the redaction filter is a second line of defence for text
that comes from elsewhere (an SDK's exception message, say) and happens to contain one.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

ROOT_LOGGER_NAME = "mlflow_secrets_auth"
LOG_LEVEL_VARIABLE = "MLFLOW_SECRETS_LOG_LEVEL"
#: What a line on stderr looks like, e.g. ``INFO: Secret fetched successfully (provider=vault, …)``.
SHORT_FORMAT = "%(levelname)s: %(message)s"
_MASK = "***"
_MAX_TRACKED = 64

_lock = threading.Lock()
_secrets: dict[str, None] = {}  # insertion-ordered set of live secret strings


def register_secret(value: str) -> None:
    """Remember a secret value (>= 4 chars) so that any log line that contains it is masked."""
    if len(value) < 4:
        return
    with _lock:
        _secrets.pop(value, None)
        _secrets[value] = None
        while len(_secrets) > _MAX_TRACKED:
            del _secrets[next(iter(_secrets))]


def redact(text: str) -> str:
    """Mask every registered secret that occurs in ``text``."""
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, _MASK)
    return text


def after_fork_in_child() -> None:
    """A new lock for a forked child: one held by a parent thread would block every log call."""
    global _lock
    _lock = threading.Lock()


class RedactingFilter(logging.Filter):
    """Rewrites a record whose rendered message or exception text contains a known secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and record.exc_info[1] is not None:
            text = redact(str(record.exc_info[1]))
            if text != str(record.exc_info[1]):
                record.exc_info = None
                record.exc_text = None
                record.msg = f"{record.msg} ({text})"
        return True


_filter = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """A child of the package logger that carries the redaction filter."""
    logger = logging.getLogger(name)
    if _filter not in logger.filters:
        logger.addFilter(_filter)
    return logger


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter(SHORT_FORMAT))

    def emit(self, record: logging.LogRecord) -> None:
        stream = sys.stderr
        if stream is None:  # pythonw, a closed console: nowhere to write
            return
        self.stream = stream  # emit runs under the handler's lock
        super().emit(record)


class FallbackStderrHandler(StderrHandler):
    """The package's records on stderr while the application has configured no logging."""

    def handle(self, record: logging.LogRecord) -> bool:
        if application_handles(record.name, self):
            return False
        return super().handle(record)


def application_handles(name: str, fallback: logging.Handler | None = None) -> bool:
    """Whether a record of logger ``name`` reaches a handler the application (or the CLI) set up.

    Walks the loggers a record propagates through, as :meth:`logging.Logger.callHandlers` does;
    a handful of attribute reads, done only for records that passed the level check.
    """
    logger: logging.Logger | None = logging.getLogger(name)
    while logger is not None:
        for handler in logger.handlers:
            if handler is not fallback and not isinstance(handler, logging.NullHandler):
                return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


_fallback = FallbackStderrHandler()


def configure_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> None:
    """Apply MLFLOW_SECRETS_LOG_LEVEL: the package logger's level and the stderr fallback.

    Unset (or not a level name): the level is left as the application set it and the fallback
    is removed.
    """
    env = os.environ if environ is None else environ
    level = (env.get(LOG_LEVEL_VARIABLE) or "").strip().upper()
    root = logging.getLogger(ROOT_LOGGER_NAME)
    if level and isinstance(logging.getLevelName(level), int):
        root.setLevel(level)
        if _fallback not in root.handlers:
            root.addHandler(_fallback)
    elif _fallback in root.handlers:
        root.removeHandler(_fallback)


_root = logging.getLogger(ROOT_LOGGER_NAME)
if not any(isinstance(h, logging.NullHandler) for h in _root.handlers):
    _root.addHandler(logging.NullHandler())
_root.addFilter(_filter)
configure_from_env()
