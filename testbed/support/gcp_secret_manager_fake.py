"""A loopback GCP Secret Manager (v1 AccessSecretVersion over REST, HTTPS) and a loopback Compute
Engine metadata server (plain HTTP, as the real one), for the gcp-secret-manager store tests. No
Secret Manager emulator exists, so this fake speaks the wire protocol google-cloud-secret-manager's
REST transport and google-auth use:

* ``GET /v1/projects/{p}[/locations/{l}]/secrets/{s}/versions/{v}:access`` answers
  ``{"name": ".../versions/N", "payload": {"data": <base64>, "dataCrc32c": "<int64 as string>"}}``
  (``latest`` is the newest version, whatever its state), or Google's JSON error shape
  ``{"error": {"code", "message", "status", "details"}}``: 404 ``NOT_FOUND``, 403
  ``PERMISSION_DENIED`` (with an ``IAM_PERMISSION_DENIED`` ErrorInfo), 400
  ``FAILED_PRECONDITION`` for a disabled or destroyed version, 401 ``UNAUTHENTICATED``, 503
  ``UNAVAILABLE`` on cue.
* The bearer token must be either a self-signed JWT (RS256) from a service-account key this fake
  made (the client library signs its own JWT with a key file instead of calling a token endpoint:
  AIP-4111), verified against that key's public half; or an access token the metadata fake issued.
* The metadata server answers the detection ping (``Metadata-Flavor: Google``), the project ID,
  the default service account's info and ``.../service-accounts/default/token``; it can refuse
  tokens (as GKE's does for an unbound Kubernetes service account).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import google_crc32c
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .azure_keyvault_fake import TlsFiles
from .ports import LOOPBACK

PROJECT = "mlflow-secrets-test"
_ACCESS = re.compile(
    r"^/v1/(?P<secret>projects/[^/]+(?:/locations/[^/]+)?/secrets/[^/]+)"
    r"/versions/(?P<version>[^/:]+):access$"
)
_METADATA = "/computeMetadata/v1/"


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --- credentials -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceAccountKey:
    """A service-account key file written for a test; its private key is a secret to leak-check."""

    path: Path
    email: str
    key_id: str
    private_key_pem: str
    public_key: rsa.RSAPublicKey = field(repr=False)


def make_service_account_key(directory: Path, project: str = PROJECT) -> ServiceAccountKey:
    """A fresh RSA key in the JSON format of `gcloud iam service-accounts keys create`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    key_id = secrets.token_hex(20)
    email = f"mlflow-reader-{secrets.token_hex(3)}@{project}.iam.gserviceaccount.com"
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": key_id,
        "private_key": pem,
        "client_email": email,
        "client_id": str(100000000000000000000 + secrets.randbelow(10**20)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        # Never contacted: the client library signs its own JWT with a service-account key.
        "token_uri": "https://oauth2.googleapis.com/token",
        "universe_domain": "googleapis.com",
    }
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key_id[:8]}.json"
    path.write_text(json.dumps(info))
    path.chmod(0o600)
    return ServiceAccountKey(path, email, key_id, pem, key.public_key())


# --- Secret Manager ----------------------------------------------------------------------------


@dataclass
class _Version:
    number: int
    data: bytes
    state: str = "ENABLED"  # or DISABLED, DESTROYED


@dataclass(frozen=True)
class AccessRequest:
    """One request the fake Secret Manager saw."""

    path: str
    authorized: bool
    status: int


class SecretManagerFake:
    """Secret Manager's access API over HTTPS on 127.0.0.1."""

    def __init__(self, tls: TlsFiles) -> None:
        self._lock = threading.Lock()
        self._secrets: dict[str, list[_Version]] = {}
        self._denied: set[str] = set()
        self._corrupt: set[str] = set()
        self._unavailable = 0
        self._keys: dict[str, ServiceAccountKey] = {}
        self._requests: list[AccessRequest] = []
        self._bearers: list[str] = []
        self.metadata: MetadataServerFake | None = None
        self._server = HTTPServer(
            host=LOOPBACK, port=0, ssl_context=tls.server_context(), threaded=True
        )
        self._server.no_handler_status_code = 404
        self._server.expect_request(re.compile(r"^/v1/"), method="GET").respond_with_handler(
            self._handle
        )

    def start(self) -> SecretManagerFake:
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()

    @property
    def url(self) -> str:
        """The value for MLFLOW_GCP_ENDPOINT: ``https://127.0.0.1:PORT``."""
        return f"https://{LOOPBACK}:{self._server.port}"

    def reset(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._denied.clear()
            self._corrupt.clear()
            self._unavailable = 0
            self._keys.clear()
            self._requests.clear()
            self._bearers.clear()

    # -- state ---------------------------------------------------------------------------------

    def trust(self, key: ServiceAccountKey) -> None:
        """Accept self-signed JWTs made with this key (the service account exists)."""
        with self._lock:
            self._keys[key.key_id] = key

    def add_version(self, secret: str, value: str | bytes, project: str = PROJECT) -> str:
        """Add a version to ``projects/{project}/secrets/{secret}``; its number."""
        path = secret if secret.startswith("projects/") else f"projects/{project}/secrets/{secret}"
        data = value.encode() if isinstance(value, str) else value
        with self._lock:
            versions = self._secrets.setdefault(path, [])
            versions.append(_Version(len(versions) + 1, data))
            return str(len(versions))

    def set_state(self, secret: str, version: str, state: str, project: str = PROJECT) -> None:
        """DISABLED or DESTROYED (``gcloud secrets versions disable|destroy``)."""
        with self._lock:
            found = self._find(f"projects/{project}/secrets/{secret}", version)
            assert found is not None, f"no version {version} of {secret}"
            found.state = state
            if state == "DESTROYED":
                found.data = b""

    def deny(self, secret: str, project: str = PROJECT) -> None:
        """Answer reads of this secret with 403 (no secretmanager.versions.access)."""
        with self._lock:
            self._denied.add(f"projects/{project}/secrets/{secret}")

    def corrupt(self, secret: str, project: str = PROJECT) -> None:
        """Send this secret's payload with a checksum that does not match it."""
        with self._lock:
            self._corrupt.add(f"projects/{project}/secrets/{secret}")

    def unavailable(self, times: int) -> None:
        """Answer the next ``times`` reads with 503 UNAVAILABLE."""
        with self._lock:
            self._unavailable = times

    @property
    def requests(self) -> list[AccessRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def bearers(self) -> list[str]:
        """Every bearer token presented (self-signed JWTs, metadata tokens): secrets too."""
        with self._lock:
            return list(self._bearers)

    def reads(self, secret: str) -> int:
        """Authorized reads of ``secret`` (any version) answered with 200."""
        return sum(
            1
            for r in self.requests
            if r.authorized and r.status == 200 and f"/secrets/{secret}/" in r.path
        )

    # -- protocol ------------------------------------------------------------------------------

    def _find(self, path: str, version: str) -> _Version | None:
        versions = self._secrets.get(path) or []
        if version == "latest":
            return versions[-1] if versions else None
        return next((v for v in versions if str(v.number) == version), None)

    def _authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        with self._lock:
            self._bearers.append(token)
        if self.metadata is not None and token in self.metadata.issued:
            return True
        return self._valid_self_signed_jwt(token)

    def _valid_self_signed_jwt(self, token: str) -> bool:
        parts = token.split(".")
        if len(parts) != 3:
            return False
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            return False
        with self._lock:
            key = self._keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != "RS256":
            return False
        try:
            key.public_key.verify(
                signature,
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return False
        # AIP-4111: a scope claim when the caller asked for scopes, else the service as audience.
        scoped = "https://www.googleapis.com/auth/cloud-platform" in str(claims.get("scope", ""))
        for_service = claims.get("aud") == "https://secretmanager.googleapis.com/"
        return (
            claims.get("iss") == key.email
            and claims.get("sub") == key.email
            and float(claims.get("exp", 0)) > time.time()
            and (scoped or for_service)
        )

    def _handle(self, request: Request) -> Response:
        authorized = self._authorized(request)
        response = self._answer(request, authorized)
        with self._lock:
            self._requests.append(AccessRequest(request.path, authorized, response.status_code))
        return response

    def _answer(self, request: Request, authorized: bool) -> Response:
        match = _ACCESS.match(request.path)
        if match is None:
            return _error(404, "NOT_FOUND", "The requested URL was not found on this server.")
        if not authorized:
            return _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        path, version = match["secret"], match["version"]
        name = f"{path}/versions/{version}"
        with self._lock:
            if self._unavailable > 0:
                self._unavailable -= 1
                return _error(503, "UNAVAILABLE", "The service is currently unavailable.")
            denied = path in self._denied
            found = self._find(path, version)
            corrupt = path in self._corrupt
        if denied:
            return _error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'secretmanager.versions.access' denied for resource '{name}' "
                "(or it may not exist).",
                details=[
                    {
                        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                        "reason": "IAM_PERMISSION_DENIED",
                        "domain": "secretmanager.googleapis.com",
                        "metadata": {
                            "permission": "secretmanager.versions.access",
                            "resource": name,
                        },
                    }
                ],
            )
        if found is None:
            if version == "latest":
                message = f"Secret [{path}] not found or has no versions."
            else:
                message = f"Secret Version [{name}] not found."
            return _error(404, "NOT_FOUND", message)
        full = f"{path}/versions/{found.number}"
        if found.state != "ENABLED":
            return _error(
                400, "FAILED_PRECONDITION", f"Secret Version [{full}] is in {found.state} state."
            )
        checksum = google_crc32c.value(found.data)
        if corrupt:
            checksum ^= 0x1
        body = {
            "name": full,
            "payload": {
                "data": base64.b64encode(found.data).decode(),
                "dataCrc32c": str(checksum),
            },
        }
        return _json(200, body)


# --- metadata server ---------------------------------------------------------------------------


class MetadataServerFake:
    """The Compute Engine / GKE metadata server's credential endpoints, on 127.0.0.1 (plain
    HTTP, like 169.254.169.254). Point GCE_METADATA_HOST and GCE_METADATA_IP at ``host``."""

    def __init__(self, project: str = PROJECT) -> None:
        self.project = project
        self.email = f"mlflow-workload@{project}.iam.gserviceaccount.com"
        self._lock = threading.Lock()
        self._issued: list[str] = []
        self.token_requests = 0
        self.refusal: tuple[int, str] | None = None
        self._server = HTTPServer(host=LOOPBACK, port=0, threaded=True)
        self._server.no_handler_status_code = 404
        self._server.expect_request(re.compile(r"^/")).respond_with_handler(self._handle)

    def start(self) -> MetadataServerFake:
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self._server.port}"

    def env(self) -> dict[str, str]:
        return {"GCE_METADATA_HOST": self.host, "GCE_METADATA_IP": self.host}

    def refuse_tokens(self, status: int, text: str) -> None:
        """Answer token requests with this status and plain-text body from now on."""
        self.refusal = (status, text)

    @property
    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    def _handle(self, request: Request) -> Response:
        if request.headers.get("Metadata-Flavor") != "Google":
            return Response("Missing Metadata-Flavor:Google header.", status=403)
        path = request.path
        if path == "/":
            return _metadata_text("computeMetadata/\n")
        if path == f"{_METADATA}project/project-id":
            return _metadata_text(self.project)
        account = f"{_METADATA}instance/service-accounts/default/"
        if path == account and request.args.get("recursive") == "true":
            info = {
                "aliases": ["default"],
                "email": self.email,
                "scopes": ["https://www.googleapis.com/auth/cloud-platform"],
            }
            return _json(200, info, metadata=True)
        if path == f"{account}token":
            with self._lock:
                self.token_requests += 1
            if self.refusal is not None:
                status, text = self.refusal
                return Response(text, status=status, headers={"Metadata-Flavor": "Google"})
            token = "ya29.c." + secrets.token_urlsafe(32)
            with self._lock:
                self._issued.append(token)
            body = {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}
            return _json(200, body, metadata=True)
        return Response("Not Found", status=404, headers={"Metadata-Flavor": "Google"})


# --- helpers -----------------------------------------------------------------------------------


def _metadata_text(text: str) -> Response:
    return Response(
        text, status=200, content_type="application/text", headers={"Metadata-Flavor": "Google"}
    )


def _json(status: int, body: dict[str, Any], *, metadata: bool = False) -> Response:
    headers = {"Metadata-Flavor": "Google"} if metadata else {}
    return Response(
        json.dumps(body), status=status, content_type="application/json", headers=headers
    )


def _error(
    status: int, code: str, message: str, details: list[dict[str, Any]] | None = None
) -> Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": code}
    if details:
        error["details"] = details
    return _json(status, {"error": error})
