"""The README's Quick start, run as written, succeeds on the first try (issue: a newcomer).

The shell block is taken from README.md and run by bash with `set -eu`. Only its placeholders
change: the example URLs become the local OpenBao and MLflow servers, and each `...` becomes the
value the reader would paste. `pip` is the one command that is not run (the package is already
installed); `vault` is OpenBao's CLI, which takes the same arguments. The secret is a
username/password and no auth mode is set: against a `--app-name basic-auth` server that is what
a newcomer has, and it must work. The bearer form, from the sentence after the block, must work
against the server that accepts bearer tokens.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from support.mlflow_server import MlflowApiError, MlflowAuthServer
from support.openbao import OpenBaoServer, find_bao_binary

pytestmark = pytest.mark.integration

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
USER = "alice"  # the README's user name, used as is
TRAIN = textwrap.dedent(
    """
    import sys, uuid
    import mlflow

    mlflow.set_experiment(f"quick-start-{uuid.uuid4().hex[:8]}")
    with mlflow.start_run() as run:
        mlflow.log_metric("accuracy", 0.91)
        mlflow.log_text("hello from the quick start\\n", "notes.txt")
    print(f"run {run.info.run_id}")
    """
)


def quick_start_block() -> str:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert match is not None, "no bash block in the Quick start"
    return match.group(1)


def bearer_form() -> str:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"`(vault kv put \S+ token=\.\.\.)`", section)
    assert match is not None, "the Quick start names no bearer form"
    return match.group(1)


def fill_in(block: str, values: dict[str, str], urls: dict[str, str]) -> str:
    """Replace the example URLs and every `NAME=...` placeholder, nothing else."""
    for example, real in urls.items():
        assert example in block, example
        block = block.replace(example, real)

    def value(match: re.Match[str]) -> str:
        return f"{match.group(1)}={shlex.quote(values[match.group(1)])}"

    block = re.sub(r"\b(\w+)=\.\.\.", value, block)
    assert "..." not in block, "a placeholder was left unfilled"
    return block


class QuickStart:
    def __init__(
        self,
        openbao: OpenBaoServer,
        server: MlflowAuthServer,
        tmp_path: Path,
    ) -> None:
        self.openbao, self.server, self.tmp_path = openbao, server, tmp_path
        self.password = f"pw-{uuid.uuid4().hex}"
        try:
            server.create_user(USER, self.password)
        except MlflowApiError:  # created by the other form earlier in this session
            server.update_password(USER, self.password)
        (tmp_path / "train.py").write_text(TRAIN)
        (tmp_path / "home").mkdir()

    def run(self, block: str, token: str = "") -> subprocess.CompletedProcess[str]:
        script = fill_in(
            block,
            {"VAULT_TOKEN": self.openbao.root_token, "password": self.password, "token": token},
            {
                "https://vault.example.com:8200": self.openbao.addr,
                "https://mlflow.example.com": self.server.url,
            },
        )
        bao = find_bao_binary()
        assert bao is not None
        prelude = textwrap.dedent(
            f"""\
            set -eu
            pip() {{ [ "$*" = "install mlflow-secrets-auth[vault]" ]; }}
            vault() {{ {shlex.quote(bao)} "$@" >/dev/null; }}
            """
        )
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "HOME": str(self.tmp_path / "home"),
            "NO_PROXY": "127.0.0.1,localhost",
        }
        if env.get("PYTHONPATH"):  # the script runs elsewhere: keep relative entries meaning
            entries = env["PYTHONPATH"].split(os.pathsep)
            env["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
        return subprocess.run(
            ["bash", "-c", prelude + script],
            cwd=self.tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )

    def assert_logged(self, done: subprocess.CompletedProcess[str]) -> None:
        assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        assert "OK: 11 passed, 0 failed" in done.stdout  # doctor --dry-run
        run_id = done.stdout.strip().splitlines()[-1].removeprefix("run ")
        run = self.server.admin_request("GET", f"/api/2.0/mlflow/runs/get?run_id={run_id}")
        metrics = run["run"]["data"]["metrics"]
        assert [(m["key"], m["value"]) for m in metrics] == [("accuracy", 0.91)]
        files = self.server.admin_request("GET", f"/api/2.0/mlflow/artifacts/list?run_id={run_id}")[
            "files"
        ]
        assert [f["path"] for f in files] == ["notes.txt"]
        experiment_id = run["run"]["info"]["experiment_id"]
        permission = self.server.admin_request(
            "GET",
            f"/api/3.0/mlflow/users/permissions/get?username={USER}"
            f"&resource_type=experiment&resource_id={experiment_id}",
        )
        # MLflow grants the creator MANAGE: the server saw the requests as this user.
        assert permission["permission"] == "MANAGE", permission
        for secret in (self.password, self.openbao.root_token):
            assert secret not in done.stdout and secret not in done.stderr


@pytest.fixture
def quick_start(
    openbao: OpenBaoServer, mlflow_server: MlflowAuthServer, tmp_path: Path
) -> QuickStart:
    return QuickStart(openbao, mlflow_server, tmp_path)


def test_the_block_keeps_the_newcomers_defaults() -> None:
    block = quick_start_block()
    assert "AUTH_MODE" not in block
    assert "vault kv put secret/mlflow/auth username=alice password=..." in block
    assert "mlflow-secrets-auth doctor --dry-run " in block


def test_quick_start_as_written_against_a_basic_auth_server(quick_start: QuickStart) -> None:
    done = quick_start.run(quick_start_block())
    quick_start.assert_logged(done)
    assert "parsed as basic credentials for user alice (auth mode auto: username/password" in (
        done.stdout
    )


def test_quick_start_in_its_bearer_form_against_a_bearer_server(
    quick_start: QuickStart, mlflow_server: MlflowAuthServer
) -> None:
    token = f"tok-{uuid.uuid4().hex}"
    mlflow_server.set_tokens({token: USER})
    try:
        block = re.sub(
            r"vault kv put \S+ username=\S+ password=\.\.\.", bearer_form(), (quick_start_block())
        )
        assert "token=..." in block
        done = quick_start.run(block, token=token)
        quick_start.assert_logged(done)
        assert "parsed as a bearer token (auth mode auto: token secret → bearer)" in done.stdout
        assert token not in done.stdout and token not in done.stderr
    finally:
        mlflow_server.set_tokens({})


@pytest.mark.parametrize(
    ("secret", "mode", "fits"),
    [
        ({"username": USER, "password": "pw-wrong-mode-1234"}, "bearer", "basic"),
        ({"token": "tok-wrong-mode-1234"}, "basic", "bearer"),
    ],
)
def test_a_strict_mode_that_does_not_fit_the_secret_says_which_mode_does(
    openbao: OpenBaoServer,
    mlflow_server: MlflowAuthServer,
    monkeypatch: pytest.MonkeyPatch,
    secret: dict[str, str],
    mode: str,
    fits: str,
) -> None:
    path = f"quick-start-mode-{uuid.uuid4().hex[:8]}"
    openbao.write_secret("secret", path, secret)
    for name, value in {
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
        "MLFLOW_SECRETS_AUTH_ENABLE": "vault",
        "VAULT_ADDR": openbao.addr,
        "VAULT_TOKEN": openbao.root_token,
        "MLFLOW_VAULT_SECRET_PATH": f"secret/{path}",
        "MLFLOW_VAULT_AUTH_MODE": mode,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
    }.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(MlflowException) as info:
        mlflow.MlflowClient().search_experiments()
    message = str(info.value)
    assert "vault: parse failed: " in message
    assert f"fits {fits} mode, but" in message or f"the secret fits {fits} mode" in message
    assert f"to auto (the default) or to {fits}" in message
    for value in secret.values():
        assert value == USER or value not in message
