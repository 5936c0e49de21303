"""A store from another package (SPEC §12): installed for real with pip, found through the entry
point group, enabled by name, used through the real MLflow server, listed by ``info`` and
diagnosed by ``doctor``; a second, broken store package stops nothing.

The packages in ``tests/store_packages/`` are built by pip (hatchling, no network) and installed
into a directory of their own; that directory is put on ``sys.path``, which is all that package
discovery (``importlib.metadata``) looks at.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import mlflow_secrets_auth
from mlflow_secrets_auth.backends import reset_registry
from mlflow_secrets_auth.cli import main
from mlflow_secrets_auth.errors import ConfigurationError
from mlflow_secrets_auth.testing import check_store

from support.leaks import LeakCheck
from support.mlflow_server import MlflowAuthServer

PACKAGES = Path(__file__).resolve().parents[1] / "store_packages"


@pytest.fixture(scope="session")
def store_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two store packages, installed by pip into a directory of their own."""
    target = tmp_path_factory.mktemp("store-site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(PACKAGES / "teststore"),
            str(PACKAGES / "brokenstore"),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


@pytest.fixture
def installed(store_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(store_site))
    reset_registry()
    yield store_site
    monkeypatch.undo()
    reset_registry()


@pytest.fixture
def test_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The test store's "vault" file, and the variables that select it."""
    path = tmp_path / "vault.json"
    monkeypatch.setenv("MLFLOW_TESTSTORE_FILE", str(path))
    monkeypatch.setenv("MLFLOW_TESTSTORE_SECRET_NAME", "mlflow")
    monkeypatch.setenv("MLFLOW_TESTSTORE_AUTH_MODE", "basic")
    return path


def test_a_store_from_another_package_works_through_mlflow_beside_a_broken_one(
    installed: Path,
    test_vault: Path,
    mlflow_server: MlflowAuthServer,
    mlflow_run_check: object,
    monkeypatch: pytest.MonkeyPatch,
    leak_check: LeakCheck,
) -> None:
    username, password = f"third-{uuid.uuid4().hex[:8]}", f"pw-{uuid.uuid4().hex}"
    mlflow_server.create_user(username, password)
    test_vault.write_text(json.dumps({"mlflow": {"username": username, "password": password}}))
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    # The broken package comes first in the order (by name) and is passed over.
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "brokenstore,teststore")
    monkeypatch.setenv("MLFLOW_SECRETS_LOG_LEVEL", "DEBUG")
    leak_check.begin()
    run = mlflow_run_check.log(mlflow_server.url, "teststore")  # type: ignore[attr-defined]
    mlflow_run_check.assert_visible_to_admin(  # type: ignore[attr-defined]
        mlflow_server, run, "teststore", username
    )
    leak_check.assert_clean([password])


def test_info_lists_installed_stores_with_their_packages_and_reports_the_broken_one(
    installed: Path, test_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    test_vault.write_text(json.dumps({"mlflow": {"token": "tok-" + uuid.uuid4().hex}}))
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "brokenstore,teststore")
    result = CliRunner().invoke(main, ["info", "--json"], catch_exceptions=False)
    data = json.loads(result.stdout)
    stores = {entry["name"]: entry for entry in data["backends"]}
    assert stores["teststore"]["package"] == "mlflow-secrets-auth-teststore"
    assert stores["teststore"]["package_version"] == "0.3.1"
    assert stores["teststore"]["state"] == "chosen"
    assert stores["brokenstore"]["state"] == "broken"
    assert "could not be loaded" in stores["brokenstore"]["error"]
    assert "ModuleNotFoundError" in stores["brokenstore"]["error"]
    assert data["configuration"]["backend"] == "teststore"
    assert result.exit_code == 0
    assert stores["vault"]["package"] == "mlflow-secrets-auth"


def test_doctor_runs_its_chain_on_a_third_party_store(
    installed: Path, test_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "tok-" + uuid.uuid4().hex
    test_vault.write_text(json.dumps({"mlflow": {"token": token}}))
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "teststore")
    monkeypatch.setenv("MLFLOW_TESTSTORE_AUTH_MODE", "bearer")
    result = CliRunner().invoke(main, ["doctor", "--json"], catch_exceptions=False)
    assert token not in result.output
    checks = {c["id"]: c for c in json.loads(result.stdout)["checks"]}
    assert checks["configuration"]["status"] == "passed"
    assert "teststore chosen" in checks["configuration"]["detail"]
    assert "the test vault file" in checks["configuration"]["detail"]
    assert checks["secret_read"]["status"] == "passed"
    assert checks["auth_header"]["status"] == "passed"


def test_enabling_only_a_broken_store_is_a_clear_error(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "brokenstore")
    with pytest.raises(ConfigurationError) as raised:
        mlflow_secrets_auth.get_auth()
    text = str(raised.value)
    assert "brokenstore" in text
    assert "could not be loaded" in text
    assert "mlflow-secrets-auth-brokenstore" in text


def test_an_unknown_name_lists_the_installed_stores(
    installed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "no-such-store")
    with pytest.raises(ConfigurationError) as raised:
        mlflow_secrets_auth.get_auth()
    assert "teststore" in str(raised.value)
    assert "vault" in str(raised.value)


def test_the_third_party_store_passes_the_contract_kit(installed: Path, tmp_path: Path) -> None:
    from mlflow_secrets_auth_teststore import TestStore  # type: ignore[import-not-found]

    payload = "tok-" + uuid.uuid4().hex
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"mlflow": payload}))
    env = {"MLFLOW_TESTSTORE_FILE": str(good), "MLFLOW_TESTSTORE_SECRET_NAME": "mlflow"}
    check_store(
        TestStore,
        env,
        payload,
        failing_env={**env, "MLFLOW_TESTSTORE_SECRET_NAME": "missing"},
    )


def test_a_store_whose_loader_breaks_is_passed_over_and_reported(
    installed: Path, test_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    test_vault.write_text(json.dumps({"mlflow": {"token": "tok-" + uuid.uuid4().hex}}))
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "broken-loader,teststore")
    assert mlflow_secrets_auth.get_auth() is not None  # the working store is used
    data = json.loads(CliRunner().invoke(main, ["info", "--json"]).stdout)
    stores = {entry["name"]: entry for entry in data["backends"]}
    assert stores["teststore"]["state"] == "chosen"
    assert stores["broken-loader"]["state"] == "broken"
    assert "settings loader failed with KeyError" in stores["broken-loader"]["error"]
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "broken-loader")
    with pytest.raises(ConfigurationError, match="settings loader failed with KeyError"):
        mlflow_secrets_auth.get_auth()


def test_a_store_whose_fetch_breaks_fails_the_request_with_a_named_error(
    installed: Path, test_vault: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import requests

    from mlflow_secrets_auth.errors import BackendError

    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "broken-fetch")
    monkeypatch.setenv("MLFLOW_SECRETS_ALLOWED_HOSTS", "127.0.0.1")
    with pytest.raises(BackendError) as failed:
        requests.get("http://127.0.0.1:9/api/2.0/x", auth=mlflow_secrets_auth.get_auth(), timeout=5)
    assert "failed unexpectedly (ValueError)" in str(failed.value)
    assert "the-secret-payload" not in str(failed.value)  # its text is never repeated
