"""A loopback Azure Key Vault (secrets API) over HTTPS, and an App Service managed-identity token
endpoint over plain HTTP, for the Key Vault backend tests. No Key Vault emulator exists, so this
fake speaks the real wire protocol that azure-keyvault-secrets and azure-identity expect:

* Key Vault challenge authentication: a request without a valid bearer token gets
  `401` with `WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>",
  resource="https://vault.azure.net"`; the SDK parses the tenant and resource from it, asks its
  credential for a token for `https://vault.azure.net/.default`, and repeats the request.
* `GET /secrets/{name}/{version}?api-version=...` (an empty version means the latest) answers
  `{"value", "id": "<vault>/secrets/<name>/<version>", "attributes"}`, or Key Vault's error
  bodies: 404 `SecretNotFound`, 403 `Forbidden` with inner code `AccessDenied` or
  `SecretDisabled`.
* The identity endpoint answers `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=...` with
  header `X-IDENTITY-HEADER: $IDENTITY_HEADER` (the App Service protocol that azure-identity's
  `ManagedIdentityCredential` uses through MSAL) with `{"access_token", "expires_on", ...}`.
  The vault accepts only tokens that this endpoint issued.

The SDK refuses a challenge whose resource domain (`vault.azure.net`) is not a suffix of the vault
host unless the client is built with `verify_challenge_resource=False`; a vault on 127.0.0.1 is
exactly the "private endpoint / custom domain" case, so tests set
`MLFLOW_AZURE_VERIFY_CHALLENGE_RESOURCE=false` (and one test checks the error without it).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from .ports import LOOPBACK

TENANT_ID = "72f988bf-0000-4000-8000-00000000fa4e"
VAULT_RESOURCE = "https://vault.azure.net"
CHALLENGE = (
    f'Bearer authorization="https://login.microsoftonline.com/{TENANT_ID}", '
    f'resource="{VAULT_RESOURCE}"'
)
IDENTITY_PATH = "/msi/token"


# --- TLS ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    """A self-signed certificate for 127.0.0.1 and localhost, usable as its own CA bundle."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(self.cert_path), str(self.key_path))
        return context


def make_tls_files(directory: Path) -> TlsFiles:
    """Write a fresh key and self-signed certificate (valid one day) into `directory`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlflow-secrets-auth test vault")])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    ski = x509.SubjectKeyIdentifier.from_public_key(public)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = directory / "vault-cert.pem", directory / "vault-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(cert_path, key_path)


# --- identity endpoint -------------------------------------------------------------------------


class IdentityEndpointFake:
    """App Service managed-identity endpoint: issues a fresh random token per request."""

    def __init__(self) -> None:
        self.header_secret = secrets.token_urlsafe(16)
        self._lock = threading.Lock()
        self._issued: list[str] = []
        self._requests: list[dict[str, str]] = []
        self.failure: tuple[int, dict[str, Any]] | None = None
        self._server = HTTPServer(host=LOOPBACK, port=0, threaded=True)
        self._server.expect_request(IDENTITY_PATH, method="GET").respond_with_handler(self._handle)

    def start(self) -> IdentityEndpointFake:
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()

    @property
    def url(self) -> str:
        """The value for IDENTITY_ENDPOINT."""
        return self._server.url_for(IDENTITY_PATH)

    def env(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.header_secret}

    def reset(self) -> None:
        with self._lock:
            self._issued.clear()
            self._requests.clear()
            self.failure = None

    def fail_with(self, status: int, body: dict[str, Any]) -> None:
        """Answer every token request with this error from now on."""
        self.failure = (status, body)

    @property
    def issued(self) -> list[str]:
        with self._lock:
            return list(self._issued)

    @property
    def token_requests(self) -> int:
        with self._lock:
            return len(self._requests)

    def _handle(self, request: Request) -> Response:
        with self._lock:
            self._requests.append(dict(request.args))
        if self.failure is not None:
            status, body = self.failure
            return _json(status, body)
        if request.headers.get("X-IDENTITY-HEADER") != self.header_secret:
            return _json(401, {"statusCode": 401, "message": "Missing or invalid identity header"})
        if request.args.get("api-version") != "2019-08-01" or not request.args.get("resource"):
            return _json(400, {"statusCode": 400, "message": "api-version and resource required"})
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(24)
        with self._lock:
            self._issued.append(token)
        return _json(
            200,
            {
                "access_token": token,
                "expires_on": str(int(time.time()) + 3600),
                "resource": request.args["resource"],
                "token_type": "Bearer",
                "client_id": str(uuid.UUID(int=1)),
            },
        )


# --- Key Vault ---------------------------------------------------------------------------------


@dataclass
class _Version:
    version: str
    value: str
    enabled: bool = True


@dataclass
class _Secret:
    versions: list[_Version] = field(default_factory=list)
    forbidden: bool = False


@dataclass(frozen=True)
class VaultRequest:
    """One request the fake vault saw."""

    method: str
    path: str
    api_version: str | None
    authorized: bool
    status: int


class KeyVaultFake:
    """Key Vault secrets API over HTTPS on 127.0.0.1; bearer tokens checked against `identity`."""

    def __init__(self, tls: TlsFiles, identity: IdentityEndpointFake) -> None:
        self.identity = identity
        self._lock = threading.Lock()
        self._secrets: dict[str, _Secret] = {}
        self._requests: list[VaultRequest] = []
        self._rejected_tokens: set[str] = set()
        self._read_delay = 0.0
        self._slowed = 0
        self._server = HTTPServer(
            host=LOOPBACK, port=0, ssl_context=tls.server_context(), threaded=True
        )
        self._server.no_handler_status_code = 404
        self._server.expect_request(re.compile(r"^/secrets/")).respond_with_handler(self._handle)

    def start(self) -> KeyVaultFake:
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server.is_running():
            self._server.stop()

    @property
    def url(self) -> str:
        """The vault URL, `https://127.0.0.1:PORT` (the SDK appends /secrets/...)."""
        return f"https://{LOOPBACK}:{self._server.port}"

    def reset(self) -> None:
        with self._lock:
            self._secrets.clear()
            self._requests.clear()
            self._rejected_tokens.clear()
            self._read_delay = 0.0
            self._slowed = 0

    # -- state ---------------------------------------------------------------------------------

    def set_secret(self, name: str, value: str) -> str:
        """Add a new version of `name` holding `value` (it becomes the latest); its version id."""
        version = uuid.uuid4().hex
        with self._lock:
            self._secrets.setdefault(name, _Secret()).versions.append(_Version(version, value))
        return version

    def disable(self, name: str, version: str | None = None) -> None:
        """Disable one version (default: the latest), as `az keyvault secret set-attributes`."""
        with self._lock:
            target = self._find(name, version)
            assert target is not None, f"no such secret {name}/{version}"
            target.enabled = False

    def forbid(self, name: str) -> None:
        """Answer reads of `name` with 403 AccessDenied (the identity lacks 'get')."""
        with self._lock:
            self._secrets.setdefault(name, _Secret()).forbidden = True

    def reject_all_tokens(self) -> None:
        """Treat every token issued so far as invalid (revoked, or for another tenant)."""
        with self._lock:
            self._rejected_tokens.update(self.identity.issued)

    def slow_reads(self, seconds: float) -> None:
        """Hold every request for this long before answering it (0: answer at once)."""
        with self._lock:
            self._read_delay = seconds

    @property
    def slowed_requests(self) -> int:
        """How many requests have been held by `slow_reads` (counted when the hold starts)."""
        with self._lock:
            return self._slowed

    @property
    def requests(self) -> list[VaultRequest]:
        with self._lock:
            return list(self._requests)

    def secret_reads(self, name: str) -> int:
        """How many authorized reads of `name` (any version) the vault answered with 200."""
        prefix = f"/secrets/{name}/"
        return sum(
            1
            for r in self.requests
            if r.authorized and r.status == 200 and (r.path + "/").startswith(prefix)
        )

    # -- protocol ------------------------------------------------------------------------------

    def _find(self, name: str, version: str | None) -> _Version | None:
        secret = self._secrets.get(name)
        if secret is None or not secret.versions:
            return None
        if not version:
            return secret.versions[-1]
        return next((v for v in secret.versions if v.version == version), None)

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        return token in self.identity.issued and token not in self._rejected_tokens

    def _handle(self, request: Request) -> Response:
        with self._lock:
            delay = self._read_delay
            self._slowed += 1 if delay else 0
        if delay:
            time.sleep(delay)
        authorized = self._authorized(request)
        response = self._answer(request, authorized)
        with self._lock:
            self._requests.append(
                VaultRequest(
                    request.method,
                    request.path,
                    request.args.get("api-version"),
                    authorized,
                    response.status_code,
                )
            )
        return response

    def _answer(self, request: Request, authorized: bool) -> Response:
        if not authorized:
            return _json(
                401,
                {
                    "error": {
                        "code": "Unauthorized",
                        "message": "AKV10000: Request is missing a Bearer or PoP token.",
                    }
                },
                headers={"WWW-Authenticate": CHALLENGE},
            )
        if not request.args.get("api-version"):
            return _error(400, "BadParameter", "The api-version query parameter is missing.")
        parts = request.path.split("/")  # "", "secrets", name, [version]
        if request.method != "GET" or len(parts) not in (3, 4) or not parts[2]:
            return _error(405, "BadParameter", "Only GET /secrets/{name}/{version} is faked.")
        name = parts[2]
        version = parts[3] if len(parts) == 4 else ""
        with self._lock:
            secret = self._secrets.get(name)
            found = self._find(name, version)
            forbidden = secret is not None and secret.forbidden
        if forbidden:
            return _error(
                403,
                "Forbidden",
                "The user, group or application 'appid=00000000-0000-0000-0000-000000000001' "
                "does not have secrets get permission on key vault 'fake-vault'.",
                inner="AccessDenied",
            )
        if found is None:
            shown = f"{name}/{version}" if version else name
            return _error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {shown} was not found in this key vault.",
            )
        if not found.enabled:
            return _error(
                403,
                "Forbidden",
                "Operation get is not allowed on a disabled secret.",
                inner="SecretDisabled",
            )
        return _json(
            200,
            {
                "value": found.value,
                "id": f"{self.url}/secrets/{name}/{found.version}",
                "attributes": {
                    "enabled": True,
                    "created": 1700000000,
                    "updated": 1700000000,
                    "recoveryLevel": "Recoverable+Purgeable",
                    "recoverableDays": 90,
                },
                "tags": {},
            },
        )


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status=status, content_type="application/json", headers=headers or {}
    )


def _error(status: int, code: str, message: str, inner: str | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if inner:
        error["innererror"] = {"code": inner}
    return _json(status, {"error": error})
