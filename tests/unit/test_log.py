"""MLFLOW_SECRETS_LOG_LEVEL alone shows the plugin's records on stderr, and an application's own
logging configuration always wins, even one made after the first record (SPEC §10).

Each case runs in a fresh interpreter: only there is the root logger as bare as in a user's job
(pytest puts its own handlers on it).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import logging, sys
    from mlflow_secrets_auth.log import get_logger, register_secret

    case, path = sys.argv[1], sys.argv[2]
    if case == "configured first":
        logging.basicConfig(filename=path, format="%(name)s|%(message)s")
    if case == "own handler on the package":
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(name)s|%(message)s"))
        logging.getLogger("mlflow_secrets_auth").addHandler(handler)
    log = get_logger("mlflow_secrets_auth.source")
    log.debug("first record")
    if case == "configured later":
        logging.basicConfig(filename=path, format="%(name)s|%(message)s")
    log.info("second record")
    register_secret("hunter2-canary-value")
    log.debug("text from elsewhere: %s", "hunter2-canary-value")  # masked on every path
    """
)


def run(case: str, tmp_path: Path, level: str | None = "DEBUG") -> tuple[str, str]:
    log_file = tmp_path / "app.log"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_SECRETS_LOG_LEVEL"}
    if level is not None:
        env["MLFLOW_SECRETS_LOG_LEVEL"] = level
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, case, str(log_file)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    return done.stderr, log_file.read_text() if log_file.exists() else ""


def test_the_variable_alone_sends_records_to_stderr_in_a_short_format(tmp_path: Path) -> None:
    stderr, _ = run("bare", tmp_path)
    assert stderr.splitlines() == [
        "DEBUG: first record",
        "INFO: second record",
        "DEBUG: text from elsewhere: ***",
    ]


def test_the_level_applies_to_stderr_too(tmp_path: Path) -> None:
    stderr, _ = run("bare", tmp_path, level="info")
    assert stderr.splitlines() == ["INFO: second record"]


def test_without_the_variable_nothing_is_printed(tmp_path: Path) -> None:
    stderr, _ = run("bare", tmp_path, level=None)
    assert stderr == ""


@pytest.mark.parametrize("case", ["configured first", "own handler on the package"])
def test_an_applications_logging_wins(case: str, tmp_path: Path) -> None:
    stderr, log = run(case, tmp_path)
    assert stderr == ""
    assert log.splitlines() == [
        "mlflow_secrets_auth.source|first record",
        "mlflow_secrets_auth.source|second record",
        "mlflow_secrets_auth.source|text from elsewhere: ***",
    ]


def test_logging_configured_after_the_first_record_takes_over_without_duplicates(
    tmp_path: Path,
) -> None:
    stderr, log = run("configured later", tmp_path)
    assert stderr.splitlines() == ["DEBUG: first record"]
    assert log.splitlines() == [
        "mlflow_secrets_auth.source|second record",
        "mlflow_secrets_auth.source|text from elsewhere: ***",
    ]
