"""Requests sent through the whole plugin, as a user's code would send them."""

from __future__ import annotations

import uuid

import requests

import mlflow_secrets_auth
from mlflow_secrets_auth import runtime

from .leaks import LeakCheck
from .recording_server import RecordingServer


def secret_value() -> str:
    """A credential with the characters that break URLs, and the classic trailing newline."""
    return f"s3cr@t:/%2F{uuid.uuid4().hex}\n"


def get_through_plugin(server: RecordingServer, leak_check: LeakCheck) -> requests.Response:
    """A fresh process's first request (no cached credential) with the plugin's auth object."""
    leak_check.begin()
    runtime.reset()
    auth = mlflow_secrets_auth.get_auth()
    url = f"{server.url}/api/2.0/mlflow/experiments/search"
    return requests.get(url, auth=auth, timeout=10)
