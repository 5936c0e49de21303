"""The ``mlflow-secrets-auth`` command line. Output goes to stdout; logs go to stderr."""

from __future__ import annotations

import logging
import sys

import click

from . import __version__
from .log import LOG_LEVEL_VARIABLE, ROOT_LOGGER_NAME, configure_from_env


def _log_to_stderr() -> None:
    """Show the package's log lines on stderr when MLFLOW_SECRETS_LOG_LEVEL asks for them."""
    configure_from_env()
    logger = logging.getLogger(ROOT_LOGGER_NAME)
    if logger.level != logging.NOTSET and not any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.NullHandler)
        for h in logger.handlers
    ):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
        logger.addHandler(handler)


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=(
        "Activate the plugin for MLflow with MLFLOW_TRACKING_AUTH=mlflow_secrets_auth and "
        "choose a backend with MLFLOW_SECRETS_AUTH_ENABLE (vault, aws-secrets-manager, "
        f"azure-key-vault). Set {LOG_LEVEL_VARIABLE}=DEBUG to see each step on stderr."
    ),
)
@click.version_option(__version__, "-V", "--version", prog_name="mlflow-secrets-auth")
def main() -> None:
    """Authenticate MLflow with credentials from Vault, AWS Secrets Manager or Azure Key Vault.

    Diagnose and inspect the plugin's configuration from the command line.
    """
    _log_to_stderr()


if __name__ == "__main__":  # pragma: no cover
    main()
