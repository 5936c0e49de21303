"""gcp-secret-manager settings: the name forms of SPEC §3 and their errors, the endpoint, the
declared variables, and that importing the store loads no Google module."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator, Mapping

import pytest

from mlflow_secrets_auth.backends import gcp
from mlflow_secrets_auth.backends.base import CommonSettings
from mlflow_secrets_auth.backends.gcp import GcpSecretManagerStore, GcpSettings
from mlflow_secrets_auth.errors import ConfigurationError, IncompleteConfigurationError

COMMON = CommonSettings("gcp-secret-manager", "bearer", 300.0, 10.0)


def load(**env: str) -> GcpSettings:
    return GcpSecretManagerStore.load_settings(env, COMMON)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"MLFLOW_GCP_SECRET_NAME": "projects/my-proj/secrets/mlflow-token"},
            "projects/my-proj/secrets/mlflow-token/versions/latest",
        ),
        (
            {"MLFLOW_GCP_SECRET_NAME": "projects/123456789012/secrets/tok/versions/7"},
            "projects/123456789012/secrets/tok/versions/7",
        ),
        (
            {"MLFLOW_GCP_SECRET_NAME": "projects/p-1/locations/europe-west1/secrets/tok/"},
            "projects/p-1/locations/europe-west1/secrets/tok/versions/latest",
        ),
        (
            {"MLFLOW_GCP_SECRET_NAME": "projects/example.com:proj/secrets/tok/versions/prod"},
            "projects/example.com:proj/secrets/tok/versions/prod",
        ),
        (
            {"MLFLOW_GCP_SECRET_NAME": " tok ", "MLFLOW_GCP_PROJECT": "mine"},
            "projects/mine/secrets/tok/versions/latest",
        ),
        (
            {"MLFLOW_GCP_SECRET_NAME": "tok", "GOOGLE_CLOUD_PROJECT": "from-google"},
            "projects/from-google/secrets/tok/versions/latest",
        ),
        (
            {
                "MLFLOW_GCP_SECRET_NAME": "tok",
                "MLFLOW_GCP_PROJECT": "mine",
                "GOOGLE_CLOUD_PROJECT": "from-google",
            },
            "projects/mine/secrets/tok/versions/latest",
        ),
        (
            {"MLFLOW_GCP_SECRET_NAME": "projects/named/secrets/tok", "MLFLOW_GCP_PROJECT": "x"},
            "projects/named/secrets/tok/versions/latest",
        ),
    ],
)
def test_name_forms(env: dict[str, str], expected: str) -> None:
    settings = load(**env)

    assert settings.resource == expected
    assert settings.identity == f"gcp-secret-manager:{expected}"
    assert settings.location() == expected
    assert settings.endpoint() == "Secret Manager at https://secretmanager.googleapis.com"
    assert expected in settings.describe()
    assert (settings.timeout_sec, settings.auth_mode) == (10.0, "bearer")


def test_missing_name_is_incomplete() -> None:
    with pytest.raises(IncompleteConfigurationError) as info:
        load(MLFLOW_GCP_PROJECT="p")

    assert info.value.missing == ("MLFLOW_GCP_SECRET_NAME",)


def test_short_name_without_a_project_is_incomplete() -> None:
    with pytest.raises(IncompleteConfigurationError) as info:
        load(MLFLOW_GCP_SECRET_NAME="tok")

    [missing] = info.value.missing
    assert missing.startswith("MLFLOW_GCP_PROJECT (or GOOGLE_CLOUD_PROJECT")
    assert "gcp-secret-manager: configuration incomplete" in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "projects/p/secrets",
        "projects//secrets/tok",
        "projects/p/secrets/tok/versions/",
        "projects/p/secrets/tok/versions/1/extra",
        "projects/P-UPPER/secrets/tok",
        "secrets/tok",
        "tok with spaces",
        "https://secretmanager.googleapis.com/v1/projects/p/secrets/tok",
    ],
)
def test_malformed_names_name_the_variable_not_the_value(name: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load(MLFLOW_GCP_SECRET_NAME=name, MLFLOW_GCP_PROJECT="p")

    error = info.value
    assert not isinstance(error, IncompleteConfigurationError)
    assert error.variable == "MLFLOW_GCP_SECRET_NAME"
    assert "projects/PROJECT/secrets/SECRET" in str(error)
    assert name not in str(error)


@pytest.mark.parametrize("variable", ["MLFLOW_GCP_PROJECT", "GOOGLE_CLOUD_PROJECT"])
def test_malformed_project_names_its_variable(variable: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load(MLFLOW_GCP_SECRET_NAME="tok", **{variable: "Not A Project!"})

    assert info.value.variable == variable
    assert "Not A Project!" not in str(info.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "https://secretmanager.europe-west1.rep.googleapis.com",
            "https://secretmanager.europe-west1.rep.googleapis.com",
        ),
        (
            "secretmanager.europe-west1.rep.googleapis.com",
            "https://secretmanager.europe-west1.rep.googleapis.com",
        ),
        ("https://10.0.0.5:8443/", "https://10.0.0.5:8443"),
    ],
)
def test_endpoint(raw: str, expected: str) -> None:
    settings = load(MLFLOW_GCP_SECRET_NAME="projects/p/secrets/s", MLFLOW_GCP_ENDPOINT=raw)

    assert settings.api_endpoint == expected
    assert settings.endpoint() == f"Secret Manager at {expected}"


@pytest.mark.parametrize(
    "raw", ["http://psc.example", "https://psc.example/v1", "https://user@psc.example", "https://"]
)
def test_bad_endpoint_names_the_variable(raw: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        load(MLFLOW_GCP_SECRET_NAME="projects/p/secrets/s", MLFLOW_GCP_ENDPOINT=raw)

    assert info.value.variable == "MLFLOW_GCP_ENDPOINT"


def test_a_change_to_an_sdk_variable_changes_the_settings() -> None:
    base = {"MLFLOW_GCP_SECRET_NAME": "projects/p/secrets/s"}
    first = load(**base, GOOGLE_APPLICATION_CREDENTIALS="/keys/a.json")
    same = load(**base, GOOGLE_APPLICATION_CREDENTIALS="/keys/a.json")
    other = load(**base, GOOGLE_APPLICATION_CREDENTIALS="/keys/b.json")

    assert first == same and hash(first) == hash(same)
    assert first != other  # the runtime builds a new store, hence a new client
    assert first.identity == other.identity  # but it is the same secret (same cache entry)
    assert "/keys/" not in repr(first)


class RecordingEnv(Mapping[str, str]):
    """An environment that remembers which names were looked up."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.read.add(key)
        return self._values.get(key, default)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def test_declared_variables_are_the_ones_read() -> None:
    declared = {v.name for v in GcpSecretManagerStore.variables}
    env = RecordingEnv({"MLFLOW_GCP_SECRET_NAME": "tok", "GOOGLE_CLOUD_PROJECT": "p"})

    GcpSecretManagerStore.load_settings(env, COMMON)

    assert env.read <= declared
    sdk = {v.name for v in GcpSecretManagerStore.variables if v.sdk}
    assert {"GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "GCE_METADATA_HOST"} <= sdk
    assert sdk <= env.read  # watched through the settings digest
    loader = declared - sdk
    assert loader == {
        "MLFLOW_GCP_SECRET_NAME",
        "MLFLOW_GCP_PROJECT",
        "GOOGLE_CLOUD_PROJECT",
        "MLFLOW_GCP_ENDPOINT",
    }
    assert not any(v.secret for v in GcpSecretManagerStore.variables)


def test_store_declarations() -> None:
    store = GcpSecretManagerStore
    assert (store.name, store.prefix) == ("gcp-secret-manager", "MLFLOW_GCP")
    assert store.sdk_module == "google.cloud.secretmanager"
    assert store.sdk_install == "mlflow-secrets-auth[gcp]"
    keys = {v.name: v.key for v in store.variables}
    assert keys["MLFLOW_GCP_SECRET_NAME"] == "secret_name"
    assert keys["GOOGLE_APPLICATION_CREDENTIALS"] is None


def test_importing_and_loading_settings_loads_no_google_module() -> None:
    probe = (
        "import sys, json\n"
        "from mlflow_secrets_auth.backends.base import CommonSettings\n"
        "from mlflow_secrets_auth.backends.gcp import GcpSecretManagerStore\n"
        "common = CommonSettings('gcp-secret-manager', 'bearer', 300.0, 10.0)\n"
        "env = {'MLFLOW_GCP_SECRET_NAME': 'projects/p/secrets/s'}\n"
        "s = GcpSecretManagerStore.load_settings(env, common)\n"
        "repr(GcpSecretManagerStore(s))\n"
        "roots = ('google', 'google_crc32c', 'grpc', 'proto')\n"
        "found = [m for m in sys.modules if m.split('.')[0] in roots]\n"
        "print(json.dumps(sorted(found)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)

    assert json.loads(out.stdout) == []


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_access_responses_logged_by_the_client_library_withhold_the_payload(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gcp._withhold_payload_logs()
    transport = logging.getLogger(
        "google.cloud.secretmanager_v1.services.secret_manager_service.transports.rest"
    )
    collect = Collect()
    monkeypatch.setattr(transport, "handlers", [collect])
    monkeypatch.setattr(transport, "level", logging.DEBUG)
    payload = '{"name": "projects/p/secrets/s/versions/1", "payload": {"data": "c2VjcmV0"}}'

    for rpc in ("AccessSecretVersion", "GetSecret"):
        transport.debug(
            "Received response",
            extra={"rpcName": rpc, "httpResponse": {"payload": payload, "status": 200}},
        )

    access, other = collect.records
    assert access.httpResponse["payload"].startswith("<withheld")  # type: ignore[attr-defined]
    assert access.httpResponse["status"] == 200  # type: ignore[attr-defined]
    assert other.httpResponse["payload"] == payload  # type: ignore[attr-defined]
