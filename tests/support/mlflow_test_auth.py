"""MLflow `authorization_function` for the test tracking server: basic auth plus API tokens.

Loaded inside the `mlflow server` worker (the fixture puts this directory on its PYTHONPATH and
points `authorization_function` at `mlflow_test_auth:authenticate`). It lets the tests exercise
every credential shape the plugin can send against one real server:

* `Authorization: Bearer <token>` or `X-Api-Key: <token>`: the token is looked up in the JSON
  file named by `MLFLOW_TEST_TOKENS_FILE` (`{"token": "username"}`). The file is re-read on
  every call, so a test rotates a token by rewriting the file, with no restart and no cache.
* anything else: MLflow's own basic-auth check (`authenticate_request_basic_auth`), including
  its credential cache.

MLflow calls the function for Flask routes and, through `_authenticate_custom_for_fastapi`, for
FastAPI routes as well (it replays the headers into a Flask test request context). In both paths
MLflow then looks the returned username up in its user store, so a token only works for an
existing MLflow user; a token of an unknown user gets the same 401 as an unknown token.
"""

from __future__ import annotations

import json
import os
from typing import Any

from flask import Response, request
from mlflow.server.auth import (
    authenticate_request_basic_auth,
    make_basic_auth_response,
    store,
)
from werkzeug.datastructures import Authorization

TOKENS_FILE_ENV = "MLFLOW_TEST_TOKENS_FILE"
API_KEY_HEADER = "X-Api-Key"


def _load_tokens() -> dict[str, str]:
    """The current token -> username mapping; empty when the file is missing or unreadable."""
    path = os.environ.get(TOKENS_FILE_ENV)
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as fh:
            data: Any = json.load(fh)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): str(v) for k, v in data.items()}


def _presented_token() -> str | None:
    """The bearer token or API key on the current request, if it carries one."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    api_key = request.headers.get(API_KEY_HEADER)
    if api_key is not None:
        return api_key.strip()
    return None


def authenticate() -> Authorization | Response:
    """Authenticate the current Flask request; an `Authorization` on success, else a 401."""
    token = _presented_token()
    if token is None:
        return authenticate_request_basic_auth()
    username = _load_tokens().get(token) if token else None
    # A token of a deleted (or never created) user is as unknown as a wrong token; without this
    # check MLflow would answer 404 "user not found" from deep inside its permission checks.
    if username is None or not store.has_user(username):
        return make_basic_auth_response()
    # MLflow only reads `.username` from the result (and requires this exact type).
    return Authorization("basic", {"username": username, "password": ""})
