"""The package logger: a NullHandler only, level from MLFLOW_SECRETS_LOG_LEVEL, secret redaction.

Code here never logs secret values; the redaction filter is a second line of defence for text
that comes from elsewhere (an SDK's exception message, say) and happens to contain one.
"""

from __future__ import annotations

import logging
import os
import threading

ROOT_LOGGER_NAME = "mlflow_secrets_auth"
LOG_LEVEL_VARIABLE = "MLFLOW_SECRETS_LOG_LEVEL"
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


def configure_from_env(environ: os._Environ[str] | dict[str, str] | None = None) -> None:
    """Apply MLFLOW_SECRETS_LOG_LEVEL to the package logger (invalid values are ignored)."""
    env = os.environ if environ is None else environ
    level = (env.get(LOG_LEVEL_VARIABLE) or "").strip().upper()
    root = logging.getLogger(ROOT_LOGGER_NAME)
    if level and isinstance(logging.getLevelName(level), int):
        root.setLevel(level)


_root = logging.getLogger(ROOT_LOGGER_NAME)
if not any(isinstance(h, logging.NullHandler) for h in _root.handlers):
    _root.addHandler(logging.NullHandler())
_root.addFilter(_filter)
configure_from_env()
