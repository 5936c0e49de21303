"""The real MLflow tracking server with authentication (`--app-name basic-auth`) for tests.

What the fixture sets up, and why:

* one uvicorn worker, so MLflow's per-worker credential cache is a single cache: a password
  change through the API invalidates it at once (`_invalidate_user_auth_cache`), and the cache
  TTL is 1 s so out-of-band changes show up quickly too;
* sqlite stores and a proxied artifact store (`--serve-artifacts` with `--artifacts-destination`)
  in a private temporary directory, so artifact uploads go through the authenticated server;
* `examples/mlflow-bearer-server/basic_auth.ini`, the configuration users copy: its
  `authorization_function = mlflow_bearer_auth:authenticate` (the module next to it, put on the
  server's PYTHONPATH) adds bearer-token and `X-Api-Key` authentication (a tokens file,
  rewritable at run time) on top of basic auth;
* `default_permission = READ`: any authenticated user can read everything and can create
  experiments and registered models (creating needs no permission while workspaces are off, and
  the creator is granted MANAGE on what it creates), but cannot write into other users'
  experiments. Use `grant_permission` for that.
"""

from __future__ import annotations

import configparser
import functools
import importlib.util
import io
import os
import secrets
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import requests

from .ports import LOOPBACK, ManagedServer, ServerProcess

#: The bearer-token `authorization_function` the server runs (and its tokens-file helpers).
BEARER_AUTH_DIR = Path(__file__).resolve().parents[2] / "examples" / "mlflow-bearer-server"
BEARER_AUTH_MODULE = "mlflow_bearer_auth"
_REQUEST_TIMEOUT = 15.0
# Client-side or server-side settings from the developer's shell that would change how the
# server behaves; the server gets exactly the MLFLOW_* variables this class sets.
_STRIPPED_ENV_PREFIXES = ("MLFLOW_", "_MLFLOW_", "AWS_", "AZURE_", "VAULT_")


def auth_config(tmp: Path) -> str:
    """The example's basic_auth.ini (the configuration users copy), with the user store in `tmp`
    and a 1 s credential cache so that an out-of-band change shows up quickly."""
    config = configparser.ConfigParser()
    config.read(BEARER_AUTH_DIR / "basic_auth.ini", encoding="utf-8")
    config["mlflow"]["database_uri"] = f"sqlite:///{tmp}/basic_auth.db"
    config["mlflow"]["auth_cache_ttl_seconds"] = "1"
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


@functools.cache
def bearer_auth() -> ModuleType:
    """The example's `mlflow_bearer_auth` module, loaded from its file (its MLflow imports are
    deferred to the server, so loading it here opens no auth store)."""
    path = BEARER_AUTH_DIR / f"{BEARER_AUTH_MODULE}.py"
    spec = importlib.util.spec_from_file_location(BEARER_AUTH_MODULE, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_mlflow_cli() -> str:
    """The `mlflow` entry point of the running interpreter's environment, else from PATH."""
    candidate = Path(sys.executable).parent / "mlflow"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("mlflow")
    if found is None:
        raise FileNotFoundError(f"no 'mlflow' next to {sys.executable} nor on PATH")
    return found


class MlflowApiError(RuntimeError):
    """An admin API call to the MLflow server failed."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"MLflow {method} {path} -> HTTP {status}: {text[:300]}")
        self.status = status


class MlflowAuthServer(ManagedServer):
    """`mlflow server --app-name basic-auth` on a free loopback port, plus admin helpers."""

    admin_username = "admin"
    health_what = "GET /health"

    def __init__(self, *, startup_timeout: float = 60.0) -> None:
        self.startup_timeout = startup_timeout
        self.admin_password = secrets.token_urlsafe(18)  # 24 chars; MLflow requires >= 12
        self._secret_key = secrets.token_hex(32)
        self.port = 0
        self._tmp: Path | None = None
        self._proc: ServerProcess | None = None
        self._attached: tuple[str, Path | None] | None = None
        self._http = requests.Session()
        # Ignore proxy/netrc settings from the environment: the server is on loopback.
        self._http.trust_env = False

    @classmethod
    def attach(
        cls, url: str, admin_password: str, tokens_file: Path | None = None
    ) -> MlflowAuthServer:
        """A handle on a server started elsewhere (its admin API; `stop()` leaves it running),
        so that a process started by a test can reuse the test session's server."""
        server = cls()
        server.admin_password = admin_password
        server._attached = (url.rstrip("/"), tokens_file)
        return server

    # ------------------------------------------------------------------ lifecycle

    @property
    def url(self) -> str:
        """Tracking URI of the server, e.g. `http://127.0.0.1:PORT`."""
        if self._attached is not None:
            return self._attached[0]
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def tokens_file(self) -> Path:
        """The server's tokens file (SHA-256 of each API token -> username), read on every
        request; see examples/mlflow-bearer-server/mlflow_bearer_auth.py."""
        if self._attached is not None:
            assert self._attached[1] is not None, "attached without its tokens file"
            return self._attached[1]
        assert self._tmp is not None, "server not started"
        return self._tmp / "tokens.json"

    @property
    def artifacts_dir(self) -> Path:
        """Where the server stores proxied artifacts (to check an upload really arrived)."""
        assert self._tmp is not None, "server not started"
        return self._tmp / "artifacts"

    def start(self, attempts: int = 3) -> MlflowAuthServer:
        """Start the server and block until `GET /health` answers 200."""
        self._tmp = Path(tempfile.mkdtemp(prefix="mlflow-auth-test-"))
        (self._tmp / "basic_auth.ini").write_text(auth_config(self._tmp))
        self.artifacts_dir.mkdir()
        self.set_tokens({})
        self._launch(attempts)
        return self

    def _spawn(self) -> ServerProcess:
        assert self._tmp is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV_PREFIXES)}
        env.update(
            {
                "MLFLOW_AUTH_CONFIG_PATH": str(self._tmp / "basic_auth.ini"),
                "MLFLOW_AUTH_ADMIN_PASSWORD": self.admin_password,
                "MLFLOW_FLASK_SERVER_SECRET_KEY": self._secret_key,
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
                "MLFLOW_DISABLE_TELEMETRY": "true",
                "DO_NOT_TRACK": "true",
                bearer_auth().TOKENS_FILE_ENV: str(self.tokens_file),
                "PYTHONPATH": str(BEARER_AUTH_DIR),
                "PYTHONUNBUFFERED": "1",
            }
        )
        argv = [
            find_mlflow_cli(),
            "server",
            "--app-name",
            "basic-auth",
            "--workers",
            "1",
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--backend-store-uri",
            f"sqlite:///{self._tmp}/mlflow.db",
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.artifacts_dir),
        ]
        proc = ServerProcess(
            argv,
            name="mlflow",
            env=env,
            cwd=self._tmp,
            log_dir=self._tmp,
            secrets=[self.admin_password, self._secret_key],
        )
        proc.start()
        return proc

    def _healthy(self) -> bool:
        try:
            resp = self._http.get(f"{self.url}/health", timeout=2.0)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    # ------------------------------------------------------------------ admin API

    def admin_request(
        self, method: str, path: str, *, json_body: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call `path` as the admin (basic auth); return the JSON body or raise MlflowApiError."""
        resp = self._http.request(
            method,
            f"{self.url}/{path.lstrip('/')}",
            json=json_body,
            auth=(self.admin_username, self.admin_password),
            timeout=_REQUEST_TIMEOUT,
        )
        if resp.status_code >= 400:
            raise MlflowApiError(method, path, resp.status_code, resp.text)
        return resp.json() if resp.content else {}

    def create_user(self, username: str, password: str) -> None:
        """Create a non-admin user (MLflow requires passwords of at least 12 characters)."""
        self.admin_request(
            "POST",
            "/api/2.0/mlflow/users/create",
            json_body={"username": username, "password": password},
        )

    def update_password(self, username: str, password: str) -> None:
        """Set `username`'s password as the admin; the old one stops working immediately."""
        self.admin_request(
            "PATCH",
            "/api/2.0/mlflow/users/update-password",
            json_body={"username": username, "password": password},
        )

    def delete_user(self, username: str) -> None:
        """Delete `username` (its tokens in the tokens file then stop working too)."""
        self.admin_request(
            "DELETE", "/api/2.0/mlflow/users/delete", json_body={"username": username}
        )

    def grant_permission(
        self,
        username: str,
        resource_type: str,
        resource_id: str,
        permission: str = "EDIT",
    ) -> None:
        """Grant `username` `permission` on one resource (MLflow 3 unified grant API).

        `resource_type` is e.g. `experiment` or `registered_model`; `permission` one of READ,
        USE, EDIT, MANAGE, DENY, NO_PERMISSIONS.
        """
        self.admin_request(
            "POST",
            "/api/3.0/mlflow/users/permissions/grant",
            json_body={
                "username": username,
                "resource_type": resource_type,
                "resource_id": resource_id,
                "permission": permission,
            },
        )

    def set_tokens(self, mapping: Mapping[str, str]) -> None:
        """Make `mapping` (token -> username) the only valid tokens, atomically; the server reads
        the file on every request. Usernames must be existing MLflow users, or requests with the
        token fail."""
        bearer_auth().write_tokens(self.tokens_file, mapping)
