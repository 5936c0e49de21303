"""AWS Secrets Manager through boto3. Credentials, profile and endpoint come from boto3's own
chain (so ``AWS_PROFILE``, role credentials and ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` all work);
only the region is passed explicitly, because botocore does not read ``AWS_REGION`` by itself."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import BackendError, IncompleteConfigurationError, Step
from ..log import get_logger
from ..network import explain
from ..values import digest, text
from .base import CommonSettings, FetchedSecret, SecretStore, StoreSettings, Variable

if TYPE_CHECKING:
    from botocore import exceptions as aws_errors

logger = get_logger(__name__)
NAME = "aws-secrets-manager"
T = TypeVar("T")

# Variables boto3 reads itself; a change to one rebuilds the client.
AWS_SDK_VARIABLES = (
    "AWS_PROFILE",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_CA_BUNDLE",
    "AWS_ROLE_SESSION_NAME",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
)


@dataclass(frozen=True, kw_only=True)
class AwsSettings(StoreSettings):
    """AWS Secrets Manager: which secret; credentials come from boto3's own chain."""

    secret_id: str
    region: str | None = None
    version_stage: str = "AWSCURRENT"
    sdk_environment: str = field(default="", repr=False)  # digest of AWS_SDK_VARIABLES
    backend_name: str = NAME

    @property
    def identity(self) -> str:
        return f"aws-secrets-manager:{self.region or '-'}:{self.secret_id}:{self.version_stage}"

    def describe(self) -> str:
        return (
            f"AWS Secrets Manager secret {self.secret_id} ({self.version_stage}) in region "
            f"{self.region or '(from the AWS profile)'}, credentials from boto3's chain"
        )

    def endpoint(self) -> str:
        return f"AWS Secrets Manager in region {self.region or '(from the AWS profile)'}"

    def location(self) -> str:
        return f"{self.secret_id} ({self.version_stage})"


#: Attempts per fetch (the first call plus retries). botocore's standard mode retries throttling
#: with exponential backoff and transient network errors; each attempt gets an equal share of
#: MLFLOW_SECRETS_TIMEOUT_SEC, so one fetch stays close to that bound.
ATTEMPTS = 3
_MAX_MESSAGE = 240

_CREDENTIALS_FIX = (
    "the AWS credential chain: AWS_PROFILE (with AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE), "
    "or AWS_ACCESS_KEY_ID with AWS_SECRET_ACCESS_KEY (plus AWS_SESSION_TOKEN for temporary keys), "
    "or a role (AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE, or the instance/task role); "
    "`aws sts get-caller-identity` shows which identity is used"
)
# Error codes meaning "these credentials are not accepted", as opposed to "not allowed".
_LOGIN_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredTokenException",
        "ExpiredToken",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "AuthFailure",
    }
)
_CLOCK_CODES = frozenset({"RequestExpired", "RequestTimeTooSkewed"})
_ACCESS_CODES = frozenset({"AccessDeniedException", "AccessDenied"})
_THROTTLE_CODES = frozenset(
    {"ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"}
)


def _credential_errors() -> tuple[type[Exception], ...]:
    """Failures of the credential providers themselves (no request was sent)."""
    from botocore import exceptions as aws_errors

    return (
        aws_errors.NoCredentialsError,
        aws_errors.PartialCredentialsError,
        aws_errors.ProfileNotFound,
        aws_errors.CredentialRetrievalError,
        aws_errors.TokenRetrievalError,
        aws_errors.SSOError,
        aws_errors.InvalidConfigError,
    )


_XML_CODE = re.compile(r"<Code>([^<]{1,100})</Code>")
_XML_MESSAGE = re.compile(r"<Message>([^<]{0,500})</Message>")


class _WithholdSecretBodies(logging.Filter):
    """botocore logs every response body at DEBUG, and a GetSecretValue body *is* the secret.

    Installed on botocore's parser logger, this replaces such a body (from any client in the
    process) with a placeholder; every other record passes unchanged.
    """

    _MARKERS = (b'"SecretString"', b'"SecretBinary"')

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 1 and isinstance(args[0], bytes | bytearray):
            body = bytes(args[0])
            if any(marker in body for marker in self._MARKERS):
                record.args = ("<body withheld by mlflow-secrets-auth: it holds a secret value>",)
        return True


_parser_logger = logging.getLogger("botocore.parsers")
if not any(isinstance(f, _WithholdSecretBodies) for f in _parser_logger.filters):
    _parser_logger.addFilter(_WithholdSecretBodies())


def _short(text: str) -> str:
    """One line, bounded: service messages go into our error text, never a whole body."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def _error_code_and_message(error: aws_errors.ClientError) -> tuple[str, str]:
    """The service's error code and message, also from an XML error body (sent by some proxies
    and by moto's IAM emulation), which botocore's JSON parser leaves as a bare status code."""
    err = error.response.get("Error") or {}
    code, message = str(err.get("Code") or ""), str(err.get("Message") or "")
    if (not code or code.isdigit()) and "<Code>" in message:
        found = _XML_CODE.search(message)
        text = _XML_MESSAGE.search(message)
        code = found.group(1) if found else code
        message = text.group(1) if text else ""
    return code, _short(message)


class AwsSecretsManagerStore(SecretStore["AwsSettings"]):
    """Reads one secret version; keeps one boto3 client (its connection pool) per instance."""

    name = NAME
    prefix = "MLFLOW_AWS"
    variables = (
        Variable("MLFLOW_AWS_SECRET_NAME", "secret_name", "the secret's name or full ARN"),
        Variable("MLFLOW_AWS_SECRET_ID", None, "alias of MLFLOW_AWS_SECRET_NAME"),
        Variable("MLFLOW_AWS_VERSION_STAGE", "version_stage", "the version stage", "AWSCURRENT"),
        Variable("AWS_REGION", "region", "the secret's region"),
        Variable("AWS_DEFAULT_REGION", None, "the region when AWS_REGION is unset"),
        *(Variable(n, None, "read by boto3's own chain", sdk=True) for n in AWS_SDK_VARIABLES),
    )
    sdk_module = "boto3"
    sdk_install = "mlflow-secrets-auth[aws]"

    def __init__(self, settings: AwsSettings) -> None:
        super().__init__(settings)
        self._lock = threading.Lock()
        self._client: Any = None

    def fetch(self) -> FetchedSecret:
        s = self.settings
        client = self._get_client()
        response: dict[str, Any] = self._call(
            "read",
            lambda: client.get_secret_value(SecretId=s.secret_id, VersionStage=s.version_stage),
        )
        payload: str | bytes
        if response.get("SecretString") is not None:
            payload = str(response["SecretString"])
        elif response.get("SecretBinary") is not None:
            payload = bytes(response["SecretBinary"])
        else:
            raise BackendError(
                NAME,
                "read",
                f"{self._where()} holds neither SecretString nor SecretBinary",
                "the secret's value (aws secretsmanager put-secret-value)",
            )
        version = response.get("VersionId")
        location = f"{response.get('ARN') or s.secret_id} ({s.version_stage})"
        logger.debug(
            "AWS secret read (location=%s, version=%s, kind=%s)",
            location,
            version,
            "binary" if isinstance(payload, bytes) else "string",
        )
        return FetchedSecret(payload, version=str(version) if version else None, location=location)

    def close(self) -> None:
        """Release the client's connection pool (a later fetch builds a new client)."""
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> AwsSettings:
        secret_id = text(env, "MLFLOW_AWS_SECRET_NAME") or text(env, "MLFLOW_AWS_SECRET_ID")
        if not secret_id:
            raise IncompleteConfigurationError(
                NAME, ["MLFLOW_AWS_SECRET_NAME (or MLFLOW_AWS_SECRET_ID)"]
            )
        region = (
            text(env, "AWS_REGION") or text(env, "AWS_DEFAULT_REGION") or _arn_region(secret_id)
        )
        return AwsSettings(
            **common.kwargs(),
            secret_id=secret_id,
            region=region,
            version_stage=text(env, "MLFLOW_AWS_VERSION_STAGE") or "AWSCURRENT",
            sdk_environment=digest(env, AWS_SDK_VARIABLES),
        )

    # -- client --------------------------------------------------------------------------------

    def _get_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = self._call("connect", self._new_client)
                logger.debug(
                    "AWS Secrets Manager client created (region=%s, endpoint=%s)",
                    self._client.meta.region_name,
                    self._client.meta.endpoint_url,
                )
            return self._client

    def _new_client(self) -> Any:
        import boto3
        from botocore.config import Config

        per_attempt = self.settings.timeout_sec / ATTEMPTS
        config = Config(
            connect_timeout=per_attempt,
            read_timeout=per_attempt,
            retries={"total_max_attempts": ATTEMPTS, "mode": "standard"},
        )
        # A session of our own: boto3's default session is shared and not thread safe.
        session = boto3.session.Session()
        return session.client("secretsmanager", region_name=self.settings.region, config=config)

    # -- error mapping -------------------------------------------------------------------------

    def _region(self) -> str:
        client = self._client
        region = client.meta.region_name if client is not None else self.settings.region
        return str(region or "(none)")

    def _endpoint(self) -> str:
        client = self._client
        if client is not None:
            return str(client.meta.endpoint_url)
        return f"the {self._region()} endpoint"

    def _where(self) -> str:
        return f"{self.settings.secret_id} in region {self._region()}"

    def _call(self, step: Step, action: Callable[[], T]) -> T:
        from botocore import exceptions as aws_errors

        s = self.settings
        try:
            return action()
        except aws_errors.ClientError as error:
            raise self._client_error(error) from None
        except _credential_errors() as error:
            raise BackendError(
                NAME,
                "login",
                f"no usable AWS credentials ({type(error).__name__}: {_short(str(error))})",
                _CREDENTIALS_FIX,
            ) from None
        except aws_errors.NoRegionError:
            raise BackendError(
                NAME,
                "connect",
                "no AWS region is configured",
                "AWS_REGION (or AWS_DEFAULT_REGION, or a region in the AWS profile), or put the "
                "secret's full ARN in MLFLOW_AWS_SECRET_NAME",
            ) from None
        except (aws_errors.ConnectionError, aws_errors.HTTPClientError) as error:
            # refused, DNS, TLS, proxy, connect timeout (ConnectionError); read timeout (HTTPClient)
            detail, fix = explain(
                error, f"AWS Secrets Manager at {self._endpoint()}", s.timeout_sec
            )
            raise BackendError(
                NAME,
                "connect",
                detail,
                f"AWS_REGION / AWS_ENDPOINT_URL_SECRETS_MANAGER and {fix}",
            ) from None
        except (aws_errors.InvalidRegionError, aws_errors.InvalidEndpointConfigurationError) as e:
            raise BackendError(
                NAME,
                "connect",
                f"the AWS endpoint configuration is invalid ({type(e).__name__})",
                "AWS_REGION and AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL",
            ) from None
        except ValueError as error:
            if step != "connect":
                raise
            # botocore: "Invalid endpoint: ..." for a malformed endpoint URL.
            raise BackendError(
                NAME,
                "connect",
                f"the AWS client could not be created ({_short(str(error))})",
                "AWS_ENDPOINT_URL_SECRETS_MANAGER / AWS_ENDPOINT_URL and AWS_REGION",
            ) from None
        except aws_errors.BotoCoreError as error:
            # The text of an arbitrary botocore error may quote a response body: name the type only.
            raise BackendError(
                NAME,
                step,
                f"the AWS SDK failed ({type(error).__name__})",
                "MLFLOW_SECRETS_LOG_LEVEL=DEBUG and the botocore logs for details",
            ) from None

    def _client_error(self, error: aws_errors.ClientError) -> BackendError:
        s = self.settings
        code, message = _error_code_and_message(error)
        metadata = error.response.get("ResponseMetadata") or {}
        retries = int(metadata.get("RetryAttempts") or 0)
        where = self._where()
        said = f"{code}: {message}" if message else code
        if code == "ResourceNotFoundException":
            detail = f"Secret not found: {where}"
            fix = "MLFLOW_AWS_SECRET_NAME (a name or full ARN) and AWS_REGION"
            if s.version_stage != "AWSCURRENT":
                detail += f" (or it has no version labelled {s.version_stage})"
                fix += ", and MLFLOW_AWS_VERSION_STAGE"
            arn_region = _arn_region(s.secret_id)
            if arn_region and arn_region != self._region():
                detail += f"; the ARN names region {arn_region}"
                fix += " (the ARN's region and AWS_REGION must agree)"
            return BackendError(NAME, "read", detail, f"{fix}; `aws secretsmanager list-secrets`")
        if code in _ACCESS_CODES:
            return BackendError(
                NAME,
                "read",
                f"access denied reading {where} ({said})",
                "that this identity (`aws sts get-caller-identity`) is allowed the "
                "secretsmanager:GetSecretValue permission on this secret (IAM policy and the "
                "secret's resource policy), and kms:Decrypt on its KMS key if the secret is "
                "encrypted with a customer managed key",
            )
        if code in _LOGIN_CODES:
            return BackendError(
                NAME, "login", f"AWS rejected the credentials ({said})", _CREDENTIALS_FIX
            )
        if code in _CLOCK_CODES:
            return BackendError(
                NAME,
                "login",
                f"AWS rejected the request's signature time ({said})",
                "the system clock (NTP); request signatures are valid for a few minutes only",
            )
        if code == "DecryptionFailure":
            return BackendError(
                NAME,
                "read",
                f"Secrets Manager cannot decrypt {where} ({said})",
                "that the secret's KMS key is enabled and that this identity has kms:Decrypt on it",
            )
        if code == "InvalidRequestException":
            deleted = "delet" in message.lower()
            return BackendError(
                NAME,
                "read",
                f"AWS refused the read of {where} ({said})",
                "the secret is deleted or scheduled for deletion: restore it with "
                "`aws secretsmanager restore-secret` or point MLFLOW_AWS_SECRET_NAME at another "
                "secret"
                if deleted
                else "MLFLOW_AWS_SECRET_NAME and MLFLOW_AWS_VERSION_STAGE",
            )
        if code == "InvalidParameterException":
            return BackendError(
                NAME,
                "read",
                f"AWS rejected the request for {where} ({said})",
                "MLFLOW_AWS_SECRET_NAME and MLFLOW_AWS_VERSION_STAGE",
            )
        if code in _THROTTLE_CODES:
            return BackendError(
                NAME,
                "read",
                f"the read of {where} was throttled; retried {retries} times ({code})",
                "the request rate on this account: raise MLFLOW_AWS_TTL_SEC so processes fetch "
                "less often",
            )
        status = metadata.get("HTTPStatusCode")
        return BackendError(
            NAME,
            "read",
            f"AWS Secrets Manager answered with an error for {where} "
            f"(HTTP {status}, {said}; retried {retries} times)",
            "AWS service health, and the error code in the AWS documentation for GetSecretValue",
        )


def _arn_region(secret_id: str) -> str | None:
    parts = secret_id.split(":")
    return parts[3] if secret_id.startswith("arn:") and len(parts) > 3 and parts[3] else None
