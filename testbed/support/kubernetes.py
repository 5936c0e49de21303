"""A stand-in for the Kubernetes API's TokenReview, so Vault's kubernetes auth can be exercised
on loopback: a service-account JWT, a CA certificate, and the answer Vault expects."""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from .jwt_issuer import sign_rs256
from .openbao import OpenBaoServer
from .recording_server import RecordingServer


class ServiceAccount:
    """A signed service-account token and the CA Vault is told to trust."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace, self.name = namespace, name
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-kubernetes-ca")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256())
        )
        self.ca_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
        claims = {
            "iss": "kubernetes/serviceaccount",
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": f"uid-{name}",
        }
        self.jwt = sign_rs256(key, claims)

    def token_review(self) -> dict[str, Any]:
        """What the Kubernetes API answers for this account's token."""
        return {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "status": {
                "authenticated": True,
                "user": {
                    "username": f"system:serviceaccount:{self.namespace}:{self.name}",
                    "uid": f"uid-{self.name}",
                    "groups": ["system:serviceaccounts"],
                },
            },
        }


def enable_kubernetes_auth(
    openbao: OpenBaoServer,
    api: RecordingServer,
    account: ServiceAccount,
    *,
    mount: str,
    role: str,
    policies: list[str],
) -> None:
    """Mount kubernetes auth at ``mount``, pointed at ``api`` for TokenReview, with one role."""
    api.set_default_response(201, account.token_review())
    mounts = openbao.request("GET", "sys/auth")
    if f"{mount}/" not in (mounts.get("data") or mounts):
        openbao.request("POST", f"sys/auth/{mount}", json={"type": "kubernetes"})
    openbao.request(
        "POST",
        f"auth/{mount}/config",
        json={
            "kubernetes_host": api.url,
            "kubernetes_ca_cert": account.ca_pem,
            "disable_local_ca_jwt": True,
            "token_reviewer_jwt": "reviewer-token",
        },
    )
    openbao.request(
        "POST",
        f"auth/{mount}/role/{role}",
        json={
            "bound_service_account_names": [account.name],
            "bound_service_account_namespaces": [account.namespace],
            "policies": policies,
            "ttl": "1h",
        },
    )
