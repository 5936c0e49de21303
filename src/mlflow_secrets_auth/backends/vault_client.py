"""The Vault store's SDK side: hvac, token, AppRole, Kubernetes or JWT login; KV v1 or v2
at any mount, detected from the server rather than assumed to be ``secret/``.

A token obtained by login is renewed while it can be and replaced by a new login when it
cannot (or Vault refuses it); all of it happens inside ``fetch()``, which the cache calls ahead
of the secret's expiry, so no thread of its own is needed. A user-supplied token is used as
given (renewed only with MLFLOW_VAULT_RENEW_TOKEN=true).
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import hvac
import requests
from hvac import exceptions as vault_errors

from ..errors import BackendError, Step
from ..log import get_logger, register_secret
from ..network import explain
from .base import FetchedSecret
from .vault_login import login, login_fix, user_token, user_token_fix
from .vault_retry import TransientRetryAdapter
from .vault_settings import NAME, VaultSettings
from .vault_token import TokenLease, no_expiry

logger = get_logger(__name__)


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


class VaultClient:
    """Reads one KV secret; keeps one hvac client, its token and the token's lease between
    fetches. :class:`~.vault.VaultStore` creates it at the first fetch."""

    name = NAME

    def __init__(self, settings: VaultSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: hvac.Client | None = None
        self._retry = TransientRetryAdapter()
        self._lease: TokenLease | None = None  # None: no token yet (or it must be replaced)
        self._location: _Location | None = None

    # -- public --------------------------------------------------------------------------------

    def fetch(self) -> FetchedSecret:
        with self._lock:
            # One deadline for the whole fetch: login, renewal, lookups, read and their retries.
            self._retry.deadline = time.monotonic() + self.settings.timeout_sec
            try:
                return self._fetch()
            finally:
                self._retry.deadline = None

    def close(self) -> None:
        with self._lock:
            client, self._client, self._lease = self._client, None, None
        if client is not None:
            client.adapter.close()

    def __repr__(self) -> str:
        return f"VaultClient(addr={self.settings.addr!r}, path={self.settings.secret_path!r})"

    def _fetch(self) -> FetchedSecret:
        client = self._ready_client()
        try:
            return self._read(client)
        except _ReadForbidden as error:
            if self.settings.login_method != "token":
                # A login token may have been revoked early: log in again once and retry.
                logger.info("Vault read was refused; logging in again once (%s)", error.detail)
                self._lease = None
                return self._read(self._ready_client())
            raise self._user_token_refused(client, error) from None

    # -- connect, login, renew -----------------------------------------------------------------

    def _new_client(self) -> hvac.Client:
        s = self.settings
        verify: bool | str = s.cacert if s.cacert else not s.skip_verify
        # token="" (not None): hvac would otherwise pick up VAULT_TOKEN or ~/.vault-token itself.
        client = hvac.Client(
            url=s.addr, token="", namespace=s.namespace, verify=verify, timeout=s.timeout_sec
        )
        client.session.mount("http://", self._retry)
        client.session.mount("https://", self._retry)
        return client

    def _ready_client(self) -> hvac.Client:
        """The client with a usable token: obtained, renewed or replaced as its lease says."""
        if self._client is None:
            self._client = self._new_client()
        client, lease = self._client, self._lease
        user = self.settings.login_method == "token"
        if lease is None or (user and self.settings.token_file and self._file_token_changed()):
            self._start(client)
            return client
        action = lease.action(time.monotonic())
        if action == "renew":
            self._renew(client, lease)
        elif action == "replace" and not user:
            logger.info(
                "Vault login token is expiring and cannot be renewed further; logging in again"
            )
            self._start(client)
        return client

    def _file_token_changed(self) -> bool:
        """`vault login` rewrote ~/.vault-token since the token in use was read."""
        assert self._client is not None
        in_use: str = self._client.token
        return user_token(self.settings) != in_use

    def _start(self, client: hvac.Client) -> None:
        """Put a fresh token on ``client``: the user's, or a new login's."""
        s = self.settings
        if s.login_method == "token":
            client.token = user_token(s)
            self._lease = self._user_lease(client) if s.renew_token else no_expiry()
            return
        client.token = ""  # never send a previous token with a login
        self._lease = None
        deadline = self._retry.deadline or time.monotonic() + s.timeout_sec
        response = self._call("login", lambda: login(client, s, deadline))
        auth = response.get("auth") or {}
        if client.token:
            register_secret(client.token)
        ttl = float(auth.get("lease_duration") or 0)
        renewable = bool(auth.get("renewable"))
        self._lease = TokenLease(time.monotonic(), ttl, renewable, ttl)
        logger.info(
            "Vault login succeeded (method=%s, lease_seconds=%s, renewable=%s)",
            s.login_method,
            int(ttl),
            str(renewable).lower(),
        )

    def _user_lease(self, client: hvac.Client) -> TokenLease:
        """MLFLOW_VAULT_RENEW_TOKEN=true: learn the user token's TTL so it can be renewed."""

        def lookup() -> Any:
            try:
                return client.auth.token.lookup_self()
            except (vault_errors.Forbidden, vault_errors.Unauthorized):
                raise self._expired_user_token() from None

        data = self._call("login", lookup).get("data") or {}
        ttl = float(data.get("ttl") or 0)
        increment = float(data.get("creation_ttl") or ttl)
        renewable = bool(data.get("renewable"))
        logger.debug(
            "Vault token looked up (ttl_seconds=%d, renewable=%s)", ttl, str(renewable).lower()
        )
        return TokenLease(time.monotonic(), ttl, renewable, increment)

    def _renew(self, client: hvac.Client, lease: TokenLease) -> None:
        """renew-self; a token Vault will not renew is replaced by a new login (or, when the
        user supplied it, kept until it is refused)."""
        user = self.settings.login_method == "token"
        try:
            response = client.auth.token.renew_self(increment=f"{int(lease.increment)}s")
        except requests.RequestException as error:
            raise self._unreachable(error) from None
        except vault_errors.VaultError as error:
            logger.info(
                "Vault token renewal refused (%s); %s",
                _vault_messages(error),
                "keeping the token until it is refused" if user else "logging in again",
            )
            if user:
                self._lease = replace(lease, renewable=False)
            else:
                self._start(client)
            return
        auth = response.get("auth") or {}
        ttl = float(auth.get("lease_duration") or 0)
        self._lease = lease.renewed(time.monotonic(), ttl, bool(auth.get("renewable")))
        logger.info(
            "Vault token renewed (ttl_seconds=%d, renewable_further=%s)",
            int(ttl),
            str(self._lease.renewable).lower(),
        )

    def _user_token_refused(self, client: hvac.Client, error: BackendError) -> BackendError:
        """A refused read with a user token: expired/revoked (Vault will not look it up), or a
        policy that does not grant the read (the lookup works)."""
        try:
            client.auth.token.lookup_self()
        except (vault_errors.Forbidden, vault_errors.Unauthorized):
            return self._expired_user_token()
        except (vault_errors.VaultError, requests.RequestException):
            return error
        return error

    def _expired_user_token(self) -> BackendError:
        self._lease = None  # read the token again next time (the file may be refreshed)
        origin = self.settings.token_origin
        return BackendError(
            NAME,
            "login",
            f"Vault refused the token from {origin}: it has expired, been revoked, or is not "
            "valid on this Vault (or namespace)",
            user_token_fix(self.settings),
        )

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
            data,
            version=None if version is None else str(version),
            location=str(location),
            expires_at=_lease_expiry(response, self.settings.ttl_sec),
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
            raise self._unreachable(error) from None
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

    def _unreachable(self, error: requests.RequestException) -> BackendError:
        s = self.settings
        detail, fix = explain(error, f"Vault at {s.addr}", s.timeout_sec)
        return BackendError(NAME, "connect", detail, f"VAULT_ADDR and {fix}")

    def _login_refusal(self, error: vault_errors.VaultError) -> str:
        s = self.settings
        if s.login_method == "approle":
            what = f"approle login at auth/{s.approle_mount}"
        elif s.login_method == "kubernetes":
            what = f"kubernetes login as role {s.k8s_role} at auth/{s.k8s_mount}"
        else:
            what = f"jwt login as role {s.jwt_role} at auth/{s.jwt_mount}"
        return f"Vault authentication failed ({what}: {_vault_messages(error)})"

    def _login_fix(self) -> str:
        return login_fix(self.settings)


def _lease_expiry(response: dict[str, Any], ttl_sec: float) -> float | None:
    """A KV read's lease, as a wall-clock expiry, when it ends before the cache TTL would."""
    lease = float(response.get("lease_duration") or 0)
    return time.time() + lease if 0 < lease < ttl_sec else None
