"""A store package whose import fails, as one with a missing dependency does."""

import mlflow_secrets_auth_dependency_that_is_not_installed  # noqa: F401
