"""HashiCorp Vault / OpenBao through hvac: token, AppRole or Kubernetes login; KV v1 or v2 at any
mount, detected from the server rather than assumed to be ``secret/``."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import hvac
import requests
from hvac import exceptions as vault_errors

from ..errors import BackendError, Step
from ..log import get_logger
from ..network import explain
from ..settings import VaultSettings
from .base import FetchedSecret

logger = get_logger(__name__)
NAME = "vault"
# Re-obtain a login token once this share of its lease has passed.
_RENEW_AT_FRACTION = 0.75


@dataclass(frozen=True)
class _Location:
    mount: str
    version: int
    path: str  # relative to the mount, without KV v2's data/
    #: The server told us the mount and version; otherwise both are a guess, never shown.
    detected: bool = True

    def __str__(self) -> str:
        if not self.detected:
            return f"{self.mount}/{self.path}"
        return f"{self.mount}/{self.path} (KV v{self.version})"


class _ReadForbidden(BackendError):
    """A 403 on the read: the one read failure that a fresh login token can cure."""


_MAX_MESSAGE = 200
# Vault wraps messages as "1 error occurred:\n\t* permission denied\n\n" (go-multierror).
_MULTI_ERROR = re.compile(r"^\s*\d+ errors? occurred:\s*", re.IGNORECASE)


def _summary(message: str) -> str:
    """One line from one of Vault's error messages: the multi-error wrapper, bullets and
    surrounding white space removed, the length bounded."""
    text = _MULTI_ERROR.sub("", message)
    items = [item.strip() for item in re.split(r"\n\s*\*\s*|\n", text) if item.strip()]
    line = "; ".join(item.lstrip("* ").strip() for item in items)
    return line if len(line) <= _MAX_MESSAGE else line[: _MAX_MESSAGE - 1] + "…"


def _vault_messages(error: vault_errors.VaultError) -> str:
    """Vault's own words, summarised: "permission denied", never the raw multi-error text."""
    errors = getattr(error, "errors", None)
    if not errors:
        return type(error).__name__
    seen: dict[str, None] = {}
    for message in errors:
        summary = _summary(str(message))
        if summary:
            seen.setdefault(summary, None)
    return "; ".join(seen) or type(error).__name__


def _besides(said: str, error: vault_errors.VaultError) -> str:
    """Vault's words in parentheses, unless they only repeat what the message already says."""
    messages = _vault_messages(error)
    return "" if messages.lower() == said else f" ({messages})"


def _kv_version(config: dict[str, Any]) -> str:
    options = config.get("options") or {}
    return "KV v2" if str(options.get("version", "1")) == "2" else "KV v1"


class VaultBackend:
    """Reads one KV secret; keeps one hvac client and its login token between fetches."""

    name = NAME

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: hvac.Client | None = None
        self._token_deadline: float | None = None  # monotonic time to re-login, login tokens
        self._location: _Location | None = None

    # -- public --------------------------------------------------------------------------------

    def fetch(self) -> FetchedSecret:
        with self._lock:
            client = self._authenticated_client()
            try:
                return self._read(client)
            except _ReadForbidden as error:
                if self.settings.login_method == "token":
                    raise
                # A login token may have been revoked early: log in again once and retry.
                logger.info("Vault read was refused; logging in again once (%s)", error.detail)
                self._client = None
                return self._read(self._authenticated_client())

    def __repr__(self) -> str:
        return f"VaultBackend(addr={self.settings.addr!r}, path={self.settings.secret_path!r})"

    # -- connect and login ---------------------------------------------------------------------

    def _new_client(self) -> hvac.Client:
        s = self.settings
        verify: bool | str = s.cacert if s.cacert else not s.skip_verify
        return hvac.Client(
            url=s.addr, token=s.token, namespace=s.namespace, verify=verify, timeout=s.timeout_sec
        )

    def _authenticated_client(self) -> hvac.Client:
        expired = self._token_deadline is not None and time.monotonic() >= self._token_deadline
        if self._client is not None and not expired:
            return self._client
        client = self._new_client()
        method = self.settings.login_method
        if method == "token":
            self._token_deadline = None
        else:
            response = self._call("login", lambda: self._login(client, method))
            auth = response.get("auth") or {}
            lease = float(auth.get("lease_duration") or 0)
            self._token_deadline = (
                time.monotonic() + lease * _RENEW_AT_FRACTION if lease > 0 else None
            )
            logger.info("Vault login succeeded (method=%s, lease_seconds=%s)", method, int(lease))
        self._client = client
        return client

    def _login(self, client: hvac.Client, method: str) -> dict[str, Any]:
        s = self.settings
        if method == "approle":
            result: dict[str, Any] = client.auth.approle.login(
                role_id=s.role_id, secret_id=s.secret_id, mount_point=s.approle_mount
            )
            return result
        try:
            with open(s.k8s_token_path, encoding="utf-8") as handle:
                jwt = handle.read().strip()
        except OSError as error:
            raise BackendError(
                NAME,
                "login",
                f"cannot read the Kubernetes service-account token at {s.k8s_token_path} "
                f"({error.strerror})",
                "that the pod mounts a service-account token, or set MLFLOW_VAULT_K8S_TOKEN_PATH",
            ) from None
        result = client.auth.kubernetes.login(role=s.k8s_role, jwt=jwt, mount_point=s.k8s_mount)
        return result

    # -- locate and read -----------------------------------------------------------------------

    def _locate(self, client: hvac.Client) -> _Location:
        if self._location is not None:
            return self._location
        full = self.settings.secret_path
        detected = True
        try:
            answer = client.adapter.get(f"/v1/sys/internal/ui/mounts/{full}")
            data = answer.get("data") or {}
            mount = str(data.get("path") or "").strip("/")
            options = data.get("options") or {}
            version = 2 if str(options.get("version", "1")) == "2" else 1
            kind = data.get("type")
        except vault_errors.VaultError as error:
            # Vault answers 403 both for a mount that does not exist and for a path the token
            # may not look up: the list of mounts the token can see tells the two apart.
            logger.debug("Vault mount lookup failed (%s)", _vault_messages(error))
            mount, version, kind = self._mount_from_listing(client, full)
            detected = bool(mount)
            if not mount:  # the listing is not available either: the token itself is refused
                mount, version = full.split("/", 1)[0], 0
        if detected and (kind not in ("kv", "generic") or not mount):
            raise BackendError(
                NAME,
                "read",
                f"{full} is not inside a KV secrets engine (found type {kind!r})",
                "MLFLOW_VAULT_SECRET_PATH: it must start with the mount of a KV engine",
            )
        if namespace := self.settings.namespace:
            prefix = namespace.strip("/") + "/"
            if mount.startswith(prefix) and not full.startswith(prefix):
                mount = mount[len(prefix) :]
        relative = full[len(mount) :].strip("/") if full.startswith(mount + "/") else full
        if version != 1 and relative.startswith("data/"):
            relative = relative[len("data/") :]
        location = _Location(mount, version, relative, detected=detected)
        logger.debug("Vault secret located at %s", location)
        if detected:
            self._location = location
        return location

    def _mount_from_listing(self, client: hvac.Client, full: str) -> tuple[str, int, object]:
        """The mount holding ``full`` among those the token can see: (mount, KV version, type).

        ("", 0, None) when the listing itself is refused (an invalid or expired token); a
        :class:`BackendError` naming the visible KV mounts when no mount matches.
        """
        try:
            answer = client.adapter.get("/v1/sys/internal/ui/mounts")
        except vault_errors.VaultError as error:
            logger.debug("Vault mount listing failed (%s)", _vault_messages(error))
            return "", 0, None
        mounts = (answer.get("data") or {}).get("secret") or {}
        namespace = (self.settings.namespace or "").strip("/")
        visible: dict[str, dict[str, Any]] = {}
        for raw, config in mounts.items():
            name = str(raw).strip("/")
            if namespace and name.startswith(namespace + "/"):
                name = name[len(namespace) + 1 :]
            visible[name] = config if isinstance(config, dict) else {}
        matches = [m for m in visible if full == m or full.startswith(m + "/")]
        if matches:
            mount = max(matches, key=len)
            config = visible[mount]
            options = config.get("options") or {}
            version = 2 if str(options.get("version", "1")) == "2" else 1
            return mount, version, config.get("type")
        kv = sorted(m for m, c in visible.items() if c.get("type") in ("kv", "generic"))
        shown = ", ".join(f"{m}/ ({_kv_version(visible[m])})" for m in kv) or "none"
        first = full.split("/", 1)[0]
        raise BackendError(
            NAME,
            "read",
            f"the mount {first}/ in MLFLOW_VAULT_SECRET_PATH does not exist (no mount of that "
            f"name is visible to this token); KV mounts this token can see: {shown}",
            "MLFLOW_VAULT_SECRET_PATH: start it with one of these mounts, as <mount>/<path>"
            + (", and check VAULT_NAMESPACE" if namespace else ""),
        )

    def _read(self, client: hvac.Client) -> FetchedSecret:
        location = self._call("read", lambda: self._locate(client))
        if location.version == 0:
            return self._read_unknown_version(client, location)
        return self._read_at(client, location)

    def _read_unknown_version(self, client: hvac.Client, location: _Location) -> FetchedSecret:
        try:
            return self._read_at(client, _Location(location.mount, 2, location.path, False))
        except BackendError:
            return self._read_at(client, _Location(location.mount, 1, location.path, False))

    def _read_at(self, client: hvac.Client, location: _Location) -> FetchedSecret:
        kv = client.secrets.kv
        if location.version == 2:
            response = self._call(
                "read",
                lambda: kv.v2.read_secret_version(
                    path=location.path,
                    mount_point=location.mount,
                    raise_on_deleted_version=True,
                ),
                location,
            )
            body = response.get("data") or {}
            data = body.get("data")
            version = (body.get("metadata") or {}).get("version")
        else:
            response = self._call(
                "read",
                lambda: kv.v1.read_secret(path=location.path, mount_point=location.mount),
                location,
            )
            data, version = response.get("data"), None
        if not isinstance(data, dict):
            raise BackendError(
                NAME, "read", f"the answer for {location} holds no data", "the secret's contents"
            )
        return FetchedSecret(
            data, version=None if version is None else str(version), location=str(location)
        )

    # -- error mapping -------------------------------------------------------------------------

    def _call(self, step: Step, action: Any, location: _Location | None = None) -> Any:
        s = self.settings
        where = str(location) if location else s.secret_path
        try:
            return action()
        except BackendError:
            raise
        except requests.exceptions.RequestException as error:
            detail, fix = explain(error, f"Vault at {s.addr}", s.timeout_sec)
            raise BackendError(NAME, "connect", detail, f"VAULT_ADDR and {fix}") from None
        except (
            vault_errors.Forbidden,
            vault_errors.InvalidRequest,
            vault_errors.Unauthorized,
        ) as error:
            if step == "login":
                raise BackendError(
                    NAME, "login", self._login_refusal(error), self._login_fix()
                ) from None
            if isinstance(error, vault_errors.Forbidden):
                raise _ReadForbidden(
                    NAME,
                    "read",
                    f"permission denied reading {where}{_besides('permission denied', error)}",
                    "that the token's policy grants read on this path and that the token has "
                    "not expired (VAULT_TOKEN / login role policies)",
                ) from None
            raise BackendError(
                NAME,
                "read",
                f"Vault refused the read of {where}: {_vault_messages(error)}",
                "MLFLOW_VAULT_SECRET_PATH",
            ) from None
        except vault_errors.InvalidPath:
            if step == "login":
                raise BackendError(
                    NAME, "login", "the login endpoint does not exist", self._login_fix()
                ) from None
            raise BackendError(
                NAME,
                "read",
                f"Secret not found at path: {where}",
                "MLFLOW_VAULT_SECRET_PATH (and VAULT_NAMESPACE); the secret may be deleted",
            ) from None
        except (vault_errors.VaultDown, vault_errors.VaultNotInitialized) as error:
            raise BackendError(
                NAME,
                "connect",
                f"Vault at {s.addr} is sealed or not ready ({_vault_messages(error)})",
                "the Vault server's status (sys/health)",
            ) from None
        except vault_errors.VaultError as error:
            raise BackendError(
                NAME,
                step,
                f"Vault answered with an error ({type(error).__name__}: {_vault_messages(error)})",
                "the Vault server's logs",
            ) from None

    def _login_refusal(self, error: vault_errors.VaultError) -> str:
        method = self.settings.login_method
        return f"Vault authentication failed ({method} login: {_vault_messages(error)})"

    def _login_fix(self) -> str:
        s = self.settings
        if s.login_method == "approle":
            return (
                f"VAULT_ROLE_ID, VAULT_SECRET_ID (expired or used up?) and the AppRole mount "
                f"MLFLOW_VAULT_APPROLE_MOUNT={s.approle_mount}"
            )
        return (
            f"MLFLOW_VAULT_K8S_ROLE={s.k8s_role}, the role's bound service accounts, and "
            f"MLFLOW_VAULT_K8S_MOUNT={s.k8s_mount}"
        )
