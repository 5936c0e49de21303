"""moto's AWS emulation as a real HTTP server on 127.0.0.1, for the Secrets Manager backend tests.

The server runs in this process (`ThreadedMotoServer`) on a kernel-chosen port, so it starts in
well under a second and needs no Docker. The backend under test reaches it only through boto3's
own configuration chain: `AWS_ENDPOINT_URL_SECRETS_MANAGER`, `AWS_DEFAULT_REGION` and dummy
keys in the environment (see `env()`), exactly as a user would point it at a VPC endpoint.

moto quirks worth knowing:

* IAM enforcement is off by default; `iam_enforced()` turns it on (moto's `reset-auth` API). It
  is a process-wide switch, so tests that use it must not run concurrently with other moto tests.
* With enforcement on, moto answers Secrets Manager (a JSON-protocol service) with an *XML* IAM
  error body and HTTP 403, which botocore reports as error code "403" with the XML as message;
  real AWS sends `AccessDeniedException` / `UnrecognizedClientException` as JSON.
* A missing version stage and a missing secret both produce "can't find the specified secret".
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import requests
from moto.server import ThreadedMotoServer

from .ports import LOOPBACK

REGION = "us-east-1"
DUMMY_ACCESS_KEY_ID = "testing"
DUMMY_SECRET_ACCESS_KEY = "testing"


@dataclass(frozen=True)
class AwsSecret:
    """A secret created in moto: its name, its ARN and the id of its current version."""

    name: str
    arn: str
    version_id: str


@dataclass(frozen=True)
class AwsKeys:
    """An IAM access key pair created in moto."""

    access_key_id: str
    secret_access_key: str = ""

    def __repr__(self) -> str:
        return f"AwsKeys(access_key_id={self.access_key_id!r})"


class MotoServer:
    """A started moto server plus admin helpers that never depend on the test's environment."""

    def __init__(self) -> None:
        self._server: ThreadedMotoServer | None = None
        self._clients: dict[str, Any] = {}
        self.port = 0

    def start(self) -> MotoServer:
        server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
        server.start()
        self._server = server
        self.port = int(server.get_host_and_port()[1])
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        if server is not None:
            server.stop()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def env(self) -> dict[str, str]:
        """What a user would export to reach this endpoint with boto3's default chain."""
        return {
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": DUMMY_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": DUMMY_SECRET_ACCESS_KEY,
        }

    # -- admin side (explicit endpoint and keys; independent of os.environ) --------------------

    def client(self, service: str = "secretsmanager") -> Any:
        """An admin client with the dummy keys (built once per service: that is the slow part)."""
        client = self._clients.get(service)
        if client is None:
            session = boto3.session.Session(
                aws_access_key_id=DUMMY_ACCESS_KEY_ID,
                aws_secret_access_key=DUMMY_SECRET_ACCESS_KEY,
                region_name=REGION,
            )
            client = self._clients[service] = session.client(service, endpoint_url=self.url)
        return client

    def create_secret(
        self, value: str | bytes, *, name: str | None = None, prefix: str = "mlflow"
    ) -> AwsSecret:
        """A new secret with a unique name, holding `value` as SecretString or SecretBinary."""
        name = name or f"{prefix}/{uuid.uuid4().hex[:12]}"
        kwargs: dict[str, Any] = (
            {"SecretBinary": value} if isinstance(value, bytes) else {"SecretString": value}
        )
        answer = self.client().create_secret(Name=name, **kwargs)
        return AwsSecret(name=name, arn=answer["ARN"], version_id=answer["VersionId"])

    def put_value(
        self, secret: AwsSecret, value: str | bytes, stages: list[str] | None = None
    ) -> str:
        """A new version of `secret` (AWSCURRENT unless `stages` says otherwise); its id."""
        kwargs: dict[str, Any] = (
            {"SecretBinary": value} if isinstance(value, bytes) else {"SecretString": value}
        )
        if stages is not None:
            kwargs["VersionStages"] = stages
        answer = self.client().put_secret_value(SecretId=secret.arn, **kwargs)
        return str(answer["VersionId"])

    def delete_secret(self, secret: AwsSecret) -> None:
        """Schedule `secret` for deletion (reads then fail with InvalidRequestException)."""
        self.client().delete_secret(SecretId=secret.arn, RecoveryWindowInDays=7)

    def create_user_without_permissions(self) -> AwsKeys:
        """An IAM user with no policy at all, and an access key for it."""
        iam = self.client("iam")
        user = f"no-perms-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        key = iam.create_access_key(UserName=user)["AccessKey"]
        return AwsKeys(key["AccessKeyId"], key["SecretAccessKey"])

    @contextlib.contextmanager
    def iam_enforced(self) -> Iterator[None]:
        """Make moto check signatures and IAM permissions on every request, then switch back."""
        self._reset_auth("0")
        try:
            yield
        finally:
            self._reset_auth("inf")

    def _reset_auth(self, count: str) -> None:
        answer = requests.post(f"{self.url}/moto-api/reset-auth", data=count.encode(), timeout=10)
        answer.raise_for_status()
