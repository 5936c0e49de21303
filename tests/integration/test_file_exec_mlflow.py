"""The file and exec stores end to end: unchanged MLflow code against the real authenticated
MLflow server, through ``MLFLOW_TRACKING_AUTH=mlflow_secrets_auth`` with
``MLFLOW_SECRETS_AUTH_ENABLE=file`` or ``exec``.

- file: a Kubernetes-style Secret volume; a rotation (the MLflow password and the volume's
  atomic ``..data`` swap together) is picked up at once after the 401, long before the TTL;
- exec: a script printing JSON; with an ``expires_at`` two seconds away, the credential is
  fetched again before that time (each invocation is recorded in a file by the script itself);
- both at DEBUG, including their failure paths, without a secret in any captured text.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

import mlflow_secrets_auth
from mlflow_secrets_auth import runtime

from support.exec_scripts import script_command
from support.mlflow_server import MlflowAuthServer
from support.secret_files import SecretVolume

if TYPE_CHECKING:  # fixtures' types, defined in this directory's conftest.py
    from conftest import MlflowRunCheck

    from support.leaks import LeakCheck

pytestmark = pytest.mark.integration

# The characters that break credentials put into URLs, and the classic trailing newline.
PASSWORD_CHARS = "p@ss:w/rd%-"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def new_password() -> str:
    return PASSWORD_CHARS + uuid.uuid4().hex[:12]


class User:
    """One MLflow user, and the environment that points MLflow's client at the server through
    the plugin (the store's own variables are set by each test)."""

    def __init__(self, server: MlflowAuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server = server
        self.username = unique("user")
        self.password = new_password()
        server.create_user(self.username, self.password)
        for name, value in {
            "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
            "MLFLOW_TRACKING_URI": server.url,
            "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
            "NO_PROXY": "127.0.0.1,localhost",
        }.items():
            monkeypatch.setenv(name, value)

    def secret(self, password: str | None = None) -> str:
        """The JSON secret for this user, with a trailing newline as tools often write it."""
        body = {"username": self.username, "password": password or self.password}
        return json.dumps(body) + "\n"

    def rotate(self) -> str:
        """A new password on the server; the old one stops working at once."""
        self.password = new_password()
        self.server.update_password(self.username, self.password)
        return self.password


@pytest.fixture
def user(mlflow_server: MlflowAuthServer, monkeypatch: pytest.MonkeyPatch) -> User:
    return User(mlflow_server, monkeypatch)


def with_basic_forms(user: User, passwords: list[str]) -> list[str]:
    """The passwords, and the Basic header values built from them (a leaked header is a leak)."""
    headers = [base64.b64encode(f"{user.username}:{p}".encode()).decode() for p in passwords]
    return passwords + headers


def assert_reprs_clean(secrets: list[str]) -> None:
    """The plugin's objects a user may print: the auth object and the cache."""
    texts = [repr(mlflow_secrets_auth.get_auth()), repr(runtime.CACHE), str(runtime.CACHE)]
    for secret in secrets:
        assert not [t for t in texts if secret in t], "a secret value is in a repr"


def replays(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "retrying once" in r.getMessage()]


# --- file --------------------------------------------------------------------------------------


@pytest.fixture
def volume(user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SecretVolume:
    """A Kubernetes-style Secret volume holding the user's credentials, used by the file store."""
    secret_volume = SecretVolume(tmp_path / "secret-volume", mode=0o400)
    secret_volume.write({"credentials": user.secret()})
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "file")
    monkeypatch.setenv("MLFLOW_FILE_AUTH_MODE", "basic")
    monkeypatch.setenv("MLFLOW_FILE_SECRET_PATH", str(secret_volume.path("credentials")))
    return secret_volume


@pytest.mark.smoke
def test_file_store_logs_a_run_through_mlflow(
    user: User,
    volume: SecretVolume,
    mlflow_server: MlflowAuthServer,
    mlflow_run_check: MlflowRunCheck,
) -> None:
    run = mlflow_run_check.log(mlflow_server.url, "file")
    mlflow_run_check.assert_visible_to_admin(mlflow_server, run, "file", user.username)


def test_rotated_kubernetes_file_is_picked_up_at_once_after_a_401(
    user: User,
    volume: SecretVolume,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A long TTL: only the 401 can make the plugin look at the file again during this test.
    monkeypatch.setenv("MLFLOW_FILE_TTL_SEC", "600")
    caplog.set_level(logging.INFO, logger="mlflow_secrets_auth")
    client = MlflowClient()
    experiment_id = client.create_experiment(unique("file-rotate"))  # the cache is warm now
    old_dir = volume.data_dir

    rotated = user.rotate()
    volume.write({"credentials": user.secret(rotated)})  # kubelet's atomic ..data swap
    assert volume.data_dir != old_dir

    run = client.create_run(experiment_id)  # 401 with the cached password, then one replay
    client.log_metric(run.info.run_id, "after_rotation", 1.0)

    assert len(replays(caplog)) == 1
    assert runtime.CACHE.stats.invalidations == 1
    assert runtime.CACHE.stats.fetches == 2
    assert client.get_run(run.info.run_id).data.metrics == {"after_rotation": 1.0}


def test_file_store_at_debug_leaks_nothing(
    user: User,
    volume: SecretVolume,
    monkeypatch: pytest.MonkeyPatch,
    leak_check: LeakCheck,
) -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_LOG_LEVEL", "DEBUG")
    secrets = [user.password]
    leak_check.begin()
    client = MlflowClient()
    experiment_id = client.create_experiment(unique("file-leak"))

    rotated = user.rotate()
    secrets.append(rotated)
    volume.write({"credentials": user.secret(rotated)})
    client.create_run(experiment_id)  # the 401 and the re-read

    # A secret of the wrong shape: the parse error names what is missing, never the value.
    malformed = new_password()
    secrets.append(malformed)
    volume.write({"credentials": json.dumps({"password": malformed})})
    runtime.reset()
    with pytest.raises(MlflowException) as wrong_shape:
        client.search_experiments()
    assert "username" in str(wrong_shape.value)

    # A file this process may not open: named with its path, never its content.
    monkeypatch.setenv("MLFLOW_FILE_SECRET_PATH", str(volume.root))  # a directory
    runtime.reset()
    with pytest.raises(MlflowException) as directory:
        client.search_experiments()
    assert "is a directory" in str(directory.value)

    secrets = with_basic_forms(user, secrets)
    assert_reprs_clean(secrets)
    leak_check.assert_clean(secrets, wrong_shape.value, directory.value)


# --- exec --------------------------------------------------------------------------------------


def credential_script(
    tmp_path: Path, user: User, *, lifetime_sec: float | None, token: str | None = None
) -> Path:
    """A command printing the user's credentials as JSON (with ``expires_at`` when a lifetime
    is given): ``token`` if given, else the username and the current password, read from a
    file the test rewrites to rotate. It appends ``<start time> <expires_at>`` to an invocation
    log; the time is taken first thing, so it is close to when the plugin started it."""
    state = tmp_path / "exec-state"
    state.mkdir(exist_ok=True)
    (state / "password").write_text(user.password)
    invocations = state / "invocations"
    command = script_command(
        state,
        "credential",
        f"""
        import time
        started = time.time()
        import json
        from datetime import datetime, timezone
        from pathlib import Path

        state = Path({str(state)!r})
        lifetime = {lifetime_sec!r}
        token = {token!r}
        if token is None:
            body = {{"username": {user.username!r}, "password": (state / "password").read_text()}}
        else:
            body = {{"token": token}}
        expires = None
        if lifetime is not None:
            expires = started + lifetime
            moment = datetime.fromtimestamp(expires, tz=timezone.utc)
            body["expires_at"] = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        with open(state / "invocations", "a") as log:
            log.write(f"{{started!r}} {{expires!r}}\\n")
        print(json.dumps(body))
        """,
        fast_start=True,
    )
    (state / "command").write_text(command)
    return invocations


def invocations(log: Path) -> list[tuple[float, float | None]]:
    if not log.exists():
        return []
    rows = []
    for line in log.read_text().splitlines():
        started, expires = line.split()
        rows.append((float(started), None if expires == "None" else float(expires)))
    return rows


def use_exec(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mode: str = "basic") -> None:
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "exec")
    monkeypatch.setenv("MLFLOW_EXEC_AUTH_MODE", mode)
    monkeypatch.setenv("MLFLOW_EXEC_COMMAND", (tmp_path / "exec-state" / "command").read_text())
    monkeypatch.setenv("MLFLOW_SECRETS_TIMEOUT_SEC", "20")  # Python's start-up on a busy machine


def test_exec_store_logs_a_run_through_mlflow(
    user: User,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    mlflow_server: MlflowAuthServer,
    mlflow_run_check: MlflowRunCheck,
) -> None:
    log = credential_script(tmp_path, user, lifetime_sec=None)
    use_exec(monkeypatch, tmp_path)
    run = mlflow_run_check.log(mlflow_server.url, "exec")
    mlflow_run_check.assert_visible_to_admin(mlflow_server, run, "exec", user.username)
    assert len(invocations(log)) == 1  # one fetch for the whole run: the cache holds it


def test_exec_expires_at_two_seconds_away_is_refreshed_before_then(
    user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A bearer token (the test server's tokens file): the server checks it in microseconds,
    # where a password costs a slow hash whenever its 1 s auth cache lapses, and a request
    # stuck in that hash could let the short refresh window pass unobserved.
    token = unique("exec-token")
    user.server.set_tokens({token: user.username})
    log = credential_script(tmp_path, user, lifetime_sec=2.0, token=token)
    use_exec(monkeypatch, tmp_path, mode="bearer")
    client = MlflowClient()
    deadline = time.monotonic() + 15
    while len(invocations(log)) < 2 and time.monotonic() < deadline:
        # Back to back, so a request comes soon after the refresh is due (at 80% of the
        # credential's lifetime); every one of them is authenticated.
        client.search_experiments(max_results=1)
    rows = invocations(log)
    assert len(rows) >= 2, "the credential was never fetched again"
    (first_start, first_expiry), (second_start, _) = rows[0], rows[1]
    assert first_expiry is not None
    assert first_expiry - first_start == pytest.approx(2.0)
    # The store's expiry, not the default TTL of 300 s, decided when to fetch again, and the
    # next command started before the first credential expired.
    assert second_start < first_expiry


def test_exec_store_at_debug_leaks_nothing(
    user: User, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, leak_check: LeakCheck
) -> None:
    credential_script(tmp_path, user, lifetime_sec=60.0)
    use_exec(monkeypatch, tmp_path)
    monkeypatch.setenv("MLFLOW_SECRETS_LOG_LEVEL", "DEBUG")
    secrets = [user.password]
    leak_check.begin()
    client = MlflowClient()
    experiment_id = client.create_experiment(unique("exec-leak"))

    rotated = user.rotate()
    secrets.append(rotated)
    (tmp_path / "exec-state" / "password").write_text(rotated)
    client.create_run(experiment_id)  # the 401 runs the command again

    # A failing command that printed a secret before failing: stdout is never shown.
    printed = new_password()
    secrets.append(printed)
    failing = script_command(
        tmp_path,
        "failing",
        f"""
        import sys
        print({printed!r})
        sys.stderr.write("vault-helper: permission denied\\n")
        sys.exit(2)
        """,
    )
    monkeypatch.setenv("MLFLOW_EXEC_COMMAND", failing + " --password-file /dev/null")
    runtime.reset()
    with pytest.raises(MlflowException) as failed:
        client.search_experiments()
    message = str(failed.value)
    assert "exited with code 2" in message
    assert "vault-helper: permission denied" in message

    secrets = with_basic_forms(user, secrets)
    assert_reprs_clean(secrets)
    leak_check.assert_clean(secrets, failed.value)
