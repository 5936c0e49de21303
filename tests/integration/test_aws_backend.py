"""AWS Secrets Manager backend against moto's real server, through boto3's own configuration chain.

Faults moto cannot produce with AWS's exact error codes (a KMS decryption failure, throttling,
an expired session token) come from a loopback server that answers in Secrets Manager's JSON
wire format, so they still go through the real boto3 client, retry logic and error parsing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from mlflow_secrets_auth.backends.aws import ATTEMPTS, AwsSecretsManagerStore, AwsSettings
from mlflow_secrets_auth.credentials import parse_secret
from mlflow_secrets_auth.errors import BackendError
from mlflow_secrets_auth.settings import load_settings

from support.mlflow_server import MlflowAuthServer
from support.moto_server import REGION, AwsSecret, MotoServer
from support.plugin_calls import get_through_plugin, secret_value
from support.ports import LOOPBACK, free_port
from support.recording_server import RecordingServer

if TYPE_CHECKING:  # fixtures' types, defined in this directory's conftest.py
    from conftest import MlflowRunCheck

    from support.leaks import LeakCheck

pytestmark = pytest.mark.integration

NewSecret = Callable[[str | bytes], AwsSecret]


def backend_from_env() -> AwsSecretsManagerStore:
    """The backend exactly as the plugin would build it from the current environment."""
    settings = load_settings(os.environ).backend
    assert isinstance(settings, AwsSettings)
    return AwsSecretsManagerStore(settings)


def fetch_error() -> BackendError:
    with pytest.raises(BackendError) as info:
        backend_from_env().fetch()
    error = info.value
    assert error.backend == "aws-secrets-manager"
    assert str(error).startswith(f"aws-secrets-manager: {error.step} failed: ")
    return error


# --- reading -----------------------------------------------------------------------------------


def test_json_token_secret(aws_secret: NewSecret) -> None:
    secret = aws_secret(json.dumps({"token": "tok-json-1"}))
    backend = backend_from_env()
    assert backend._client is None  # built on first fetch, not on construction

    fetched = backend.fetch()

    assert fetched.payload == '{"token": "tok-json-1"}'
    assert fetched.version == secret.version_id
    assert secret.arn in fetched.location and "AWSCURRENT" in fetched.location
    assert parse_secret(fetched.payload, "bearer").authorization == "Bearer tok-json-1"
    assert "tok-json-1" not in repr(fetched)


def test_username_password_secret_in_basic_mode(
    aws_secret: NewSecret, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_secret(json.dumps({"username": "alice", "password": "p@ss:/%w0rd"}))
    monkeypatch.setenv("MLFLOW_AWS_AUTH_MODE", "basic")
    backend = backend_from_env()
    assert backend.settings.auth_mode == "basic"

    credential = parse_secret(backend.fetch().payload, "basic")

    assert credential.kind == "basic"
    assert credential.username == "alice"


def test_plain_string_secret_with_trailing_newline(aws_secret: NewSecret) -> None:
    aws_secret("plain-token-xyz\n")

    fetched = backend_from_env().fetch()

    assert fetched.payload == "plain-token-xyz\n"  # the backend hands over what is stored
    assert parse_secret(fetched.payload, "bearer").authorization == "Bearer plain-token-xyz"


def test_secret_binary(aws_secret: NewSecret) -> None:
    aws_secret(b'{"token": "from-binary"}\n')

    fetched = backend_from_env().fetch()

    assert isinstance(fetched.payload, bytes)
    assert parse_secret(fetched.payload, "bearer").authorization == "Bearer from-binary"


def test_version_stage_other_than_awscurrent(
    aws_secret: NewSecret, aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = aws_secret("current-token")
    pending_version = aws_env.put_value(secret, "pending-token", stages=["AWSPENDING"])

    assert backend_from_env().fetch().payload == "current-token"
    monkeypatch.setenv("MLFLOW_AWS_VERSION_STAGE", "AWSPENDING")
    backend = backend_from_env()
    fetched = backend.fetch()

    assert fetched.payload == "pending-token"
    assert fetched.version == pending_version
    assert "AWSPENDING" in fetched.location
    assert backend.settings.identity.endswith(":AWSPENDING")  # its own cache entry


def test_rotation_is_seen_by_the_next_fetch_on_the_same_client(
    aws_secret: NewSecret, aws_env: MotoServer
) -> None:
    secret = aws_secret('{"token": "before-rotation"}')
    backend = backend_from_env()
    first = backend.fetch()
    client = backend._client

    new_version = aws_env.put_value(secret, '{"token": "after-rotation"}')
    second = backend.fetch()

    assert first.payload == '{"token": "before-rotation"}'
    assert second.payload == '{"token": "after-rotation"}'
    assert second.version == new_version != first.version
    assert backend._client is client  # one client (and connection pool) per backend


def test_arn_as_secret_id_supplies_the_region(
    aws_secret: NewSecret, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = aws_secret("arn-token")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", secret.arn)
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    backend = backend_from_env()
    assert backend.settings.region == REGION  # from the ARN

    assert backend.fetch().payload == "arn-token"


def test_aws_region_wins_over_aws_default_region(
    aws_secret: NewSecret, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_secret("region-token")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_REGION", REGION)

    assert backend_from_env().fetch().payload == "region-token"

    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # moto keeps secrets per region
    error = fetch_error()
    assert error.step == "read" and "in region eu-west-1" in error.detail


# --- read failures -----------------------------------------------------------------------------


def test_secret_not_found(aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/does-not-exist")

    error = fetch_error()

    assert error.step == "read"
    assert error.detail.startswith(f"Secret not found: mlflow/does-not-exist in region {REGION}")
    assert "MLFLOW_AWS_SECRET_NAME" in error.fix and "AWS_REGION" in error.fix


def test_missing_version_stage_names_the_stage_variable(
    aws_secret: NewSecret, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_secret("only-current")
    monkeypatch.setenv("MLFLOW_AWS_VERSION_STAGE", "AWSPREVIOUS")

    error = fetch_error()

    assert error.step == "read"
    assert "no version labelled AWSPREVIOUS" in error.detail
    assert "MLFLOW_AWS_VERSION_STAGE" in error.fix


def test_arn_from_another_region_is_pointed_out(
    aws_secret: NewSecret, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = aws_secret("x")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", secret.arn.replace(REGION, "eu-central-1"))

    error = fetch_error()

    assert error.step == "read" and "the ARN names region eu-central-1" in error.detail


def test_secret_scheduled_for_deletion(aws_secret: NewSecret, aws_env: MotoServer) -> None:
    secret = aws_secret("soon-gone")
    aws_env.delete_secret(secret)

    error = fetch_error()

    assert error.step == "read"
    assert "InvalidRequestException" in error.detail and "deleted" in error.detail
    assert "restore-secret" in error.fix


def test_access_denied_by_iam(
    aws_secret: NewSecret, aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    aws_secret("guarded")
    keys = aws_env.create_user_without_permissions()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key)

    with aws_env.iam_enforced():
        error = fetch_error()

    assert error.step == "read"
    assert "access denied" in error.detail and "AccessDenied" in error.detail
    assert "secretsmanager:GetSecretValue" in error.fix and "kms:Decrypt" in error.fix


def test_unknown_access_key_is_a_login_failure(aws_secret: NewSecret, aws_env: MotoServer) -> None:
    aws_secret("guarded")  # created before enforcement; the dummy key is unknown to IAM

    with aws_env.iam_enforced():
        error = fetch_error()

    assert error.step == "login"
    assert "InvalidClientTokenId" in error.detail
    assert "AWS_PROFILE" in error.fix and "AWS_ACCESS_KEY_ID" in error.fix


# --- faults in AWS's own wire format -----------------------------------------------------------


@pytest.fixture
def aws_fault(
    recording_server: Callable[[], RecordingServer],
    aws_env: MotoServer,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[str, str], RecordingServer]:
    """Factory: Secrets Manager's endpoint answers every call with this JSON error."""

    def fault(code: str, message: str) -> RecordingServer:
        server = recording_server()
        server.set_default_response(
            status=400,
            body={"__type": code, "message": message},
            headers={"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": code},
        )
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", server.url)
        monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/faulty")
        return server

    return fault


@pytest.mark.parametrize(
    ("code", "message", "step", "in_detail", "in_fix"),
    [
        (
            "AccessDeniedException",
            "User: arn:aws:sts::123456789012:assumed-role/ci/x is not authorized to perform: "
            "secretsmanager:GetSecretValue on resource: mlflow/faulty because no identity-based "
            "policy allows the secretsmanager:GetSecretValue action",
            "read",
            "access denied reading mlflow/faulty",
            "secretsmanager:GetSecretValue",
        ),
        (
            "DecryptionFailure",
            "Secrets Manager can't decrypt the protected secret text using the provided KMS key.",
            "read",
            "cannot decrypt mlflow/faulty",
            "kms:Decrypt",
        ),
        (
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
            "read",
            "marked for deletion",
            "restore-secret",
        ),
        (
            "ExpiredTokenException",
            "The security token included in the request is expired",
            "login",
            "ExpiredTokenException",
            "AWS_SESSION_TOKEN",
        ),
        (
            "UnrecognizedClientException",
            "The security token included in the request is invalid.",
            "login",
            "UnrecognizedClientException",
            "AWS_PROFILE",
        ),
    ],
)
def test_aws_error_codes_map_to_steps(
    aws_fault: Callable[[str, str], RecordingServer],
    code: str,
    message: str,
    step: str,
    in_detail: str,
    in_fix: str,
) -> None:
    server = aws_fault(code, message)

    error = fetch_error()

    assert (error.step, code in str(error)) == (step, True)
    assert in_detail in error.detail
    assert in_fix in error.fix
    target = server.requests[0].header("X-Amz-Target")
    assert target == "secretsmanager.GetSecretValue"


def test_throttling_is_retried_then_reported(
    aws_fault: Callable[[str, str], RecordingServer],
) -> None:
    server = aws_fault("ThrottlingException", "Rate exceeded")

    error = fetch_error()

    assert error.step == "read"
    assert f"throttled; retried {ATTEMPTS - 1} times" in error.detail
    assert "MLFLOW_AWS_TTL_SEC" in error.fix
    assert len(server.requests) == ATTEMPTS


# --- connect and login failures ----------------------------------------------------------------


def test_unreachable_endpoint_is_a_connect_failure(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{LOOPBACK}:{port}")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/any")

    error = fetch_error()

    assert error.step == "connect"
    assert f"connection to AWS Secrets Manager at http://{LOOPBACK}:{port}" in error.detail
    assert "refused" in error.detail
    assert "AWS_ENDPOINT_URL_SECRETS_MANAGER" in error.fix


#: The timeout a silent endpoint is given, and how long the whole fetch may take: generous (the
#: retries' random backoff, a busy machine), yet under the 10 s default, so a store that ignored
#: the setting, or waited on the SDK's own minutes-long defaults, still fails.
SILENT_TIMEOUT_SEC = 0.6
SILENT_BOUND_SEC = SILENT_TIMEOUT_SEC * 12


def test_a_silent_endpoint_is_bounded_by_the_timeout(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch, silent_port: int
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{LOOPBACK}:{silent_port}")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/any")
    monkeypatch.setenv("MLFLOW_SECRETS_TIMEOUT_SEC", str(SILENT_TIMEOUT_SEC))

    started = time.monotonic()
    error = fetch_error()
    elapsed = time.monotonic() - started

    assert error.step == "connect"
    assert f"did not answer within {SILENT_TIMEOUT_SEC}s" in error.detail
    assert "MLFLOW_SECRETS_TIMEOUT_SEC" in error.fix
    assert elapsed < SILENT_BOUND_SEC, f"{elapsed:.1f}s for a {SILENT_TIMEOUT_SEC}s timeout"


def test_no_credentials_is_a_login_failure(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/any")

    error = fetch_error()

    assert error.step == "login"
    assert "NoCredentialsError" in error.detail
    assert "AWS_PROFILE" in error.fix and "AWS_ACCESS_KEY_ID" in error.fix
    assert "AWS_ROLE_ARN" in error.fix


def test_partial_credentials_is_a_login_failure(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/any")

    error = fetch_error()

    assert error.step == "login"
    assert "PartialCredentialsError" in error.detail
    assert "AWS_SECRET_ACCESS_KEY" in error.fix


def test_missing_profile_is_a_login_failure(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/any")

    error = fetch_error()

    assert error.step == "login"
    assert "no-such-profile" in error.detail
    assert "AWS_PROFILE" in error.fix


def test_no_region_is_a_connect_failure(
    aws_env: MotoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/no-region")

    error = fetch_error()

    assert error.step == "connect"
    assert "no AWS region" in error.detail
    assert "AWS_REGION" in error.fix and "ARN" in error.fix


# --- through the whole plugin ------------------------------------------------------------------


def test_plugin_sends_the_bearer_token(
    aws_secret: NewSecret, target: RecordingServer, leak_check: LeakCheck
) -> None:
    value = secret_value()
    aws_secret(json.dumps({"token": value}))

    response = get_through_plugin(target, leak_check)

    assert response.status_code == 200
    assert target.requests[0].header("Authorization") == f"Bearer {value.strip()}"
    # botocore logs response bodies at DEBUG; the backend withholds GetSecretValue's.
    assert "body withheld by mlflow-secrets-auth" in leak_check.log_text
    leak_check.assert_clean([value])


def test_plugin_sends_basic_credentials(
    aws_secret: NewSecret,
    target: RecordingServer,
    leak_check: LeakCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = secret_value()
    aws_secret(json.dumps({"username": "mlflow-bot", "password": value}))
    monkeypatch.setenv("MLFLOW_AWS_AUTH_MODE", "basic")

    get_through_plugin(target, leak_check)

    encoded = base64.b64encode(f"mlflow-bot:{value.strip()}".encode()).decode()
    assert target.requests[0].header("Authorization") == f"Basic {encoded}"
    leak_check.assert_clean([value, encoded])


@pytest.mark.parametrize(
    ("fault", "step"),
    [
        ("not-found", "read"),
        ("access-denied", "read"),
        ("unreachable", "connect"),
        ("no-credentials", "login"),
        ("bearer-mode-for-a-password", "parse"),
        ("broken-json", "parse"),
    ],
)
def test_plugin_errors_never_show_the_secret(
    fault: str,
    step: str,
    aws_secret: NewSecret,
    aws_env: MotoServer,
    target: RecordingServer,
    leak_check: LeakCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    value = secret_value()
    if fault == "bearer-mode-for-a-password":
        aws_secret(json.dumps({"username": "mlflow-bot", "password": value}))
        monkeypatch.setenv("MLFLOW_AWS_AUTH_MODE", "bearer")  # strict: auto would fit
    elif fault == "broken-json":
        aws_secret('{"token": ' + json.dumps(value))
    else:
        aws_secret(json.dumps({"token": value}))
    with contextlib.ExitStack() as stack:
        if fault == "not-found":
            monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", "mlflow/missing")
        elif fault == "access-denied":
            keys = aws_env.create_user_without_permissions()
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", keys.access_key_id)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", keys.secret_access_key)
            stack.enter_context(aws_env.iam_enforced())
        elif fault == "unreachable":
            monkeypatch.setenv(
                "AWS_ENDPOINT_URL_SECRETS_MANAGER", f"http://{LOOPBACK}:{free_port()}"
            )
        elif fault == "no-credentials":
            monkeypatch.delenv("AWS_ACCESS_KEY_ID")

        with pytest.raises(BackendError) as info:
            get_through_plugin(target, leak_check)

    assert (info.value.backend, info.value.step) == ("aws-secrets-manager", step)
    assert target.requests == []  # never sent without the credential
    leak_check.assert_clean([value], info.value)


@pytest.mark.smoke
def test_end_to_end_mlflow_run_with_basic_credentials_from_aws(
    mlflow_server: MlflowAuthServer,
    aws_secret: NewSecret,
    mlflow_run_check: MlflowRunCheck,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    username = f"aws-user-{uuid.uuid4().hex[:8]}"
    password = f"{secrets.token_urlsafe(18)}@:/%"
    mlflow_server.create_user(username, password)
    aws_secret(json.dumps({"username": username, "password": password + "\n"}))
    monkeypatch.setenv("MLFLOW_AWS_AUTH_MODE", "basic")
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)  # restored after the test

    run = mlflow_run_check.log(mlflow_server.url, "aws")

    mlflow_run_check.assert_visible_to_admin(mlflow_server, run, "aws", username)
