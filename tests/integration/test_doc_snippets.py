"""Every Python snippet the docs mark runnable runs, as written, against the local servers.

A snippet is marked by an HTML comment on the line before its fence (invisible on GitHub and on
the site):

- ``<!-- runnable: vault -->``: MLflow with authentication, the credential (a username and
  password) in OpenBao at the path the docs use, read with a token whose only policy besides
  ``default`` is the one the Vault page documents;
- ``<!-- runnable: aws -->``: the same server, a bearer token in Secrets Manager (moto), read by an
  IAM user whose only policy is the one the AWS page documents, with IAM enforced;
- ``<!-- runnable: module NAME -->``: the snippet is saved as the package NAME for the snippets
  after it on the same page;
- ``<!-- runnable: pytest -->``: the snippet is a test module; its ``test_*`` functions are called
  with the pytest fixtures they name.

Nothing in a snippet is replaced; only the environment around it is set up. Each run is also
searched for the secret values (the leak check).
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import os
import secrets
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.doc_pages import DOCS, Block, blocks, pages
from support.leaks import LeakCheck
from support.mlflow_server import MlflowAuthServer
from support.moto_server import REGION, MotoServer
from support.openbao import OpenBaoServer

pytestmark = pytest.mark.integration

#: The secret path of the Vault examples (Getting started, the Vault page's policy).
VAULT_SECRET_PATH = "secret/mlflow/auth"
DOCUMENTED_SECRET_NAME = "mlflow/auth"


def runnable() -> list[tuple[Block, list[Block]]]:
    """Each snippet to run, with the module snippets that come before it on its page."""
    found: list[tuple[Block, list[Block]]] = []
    for page in pages():
        modules: list[Block] = []
        for block in blocks(page):
            marker = block.marker or ""
            if not marker.startswith("runnable"):
                continue
            if marker.split(":", 1)[1].split()[0] == "module":
                modules.append(block)
            else:
                found.append((block, list(modules)))
    return found


SNIPPETS = runnable()


def test_the_docs_have_runnable_snippets_of_every_kind() -> None:
    kinds = {kind(block) for block, _ in SNIPPETS}
    assert kinds == {"vault", "aws", "pytest"}
    assert len(SNIPPETS) >= 5


def kind(block: Block) -> str:
    assert block.marker is not None
    return block.marker.split(":", 1)[1].split()[0]


def first_block(page: Path, language: str) -> str:
    return next(b.code for b in blocks(page) if b.language == language)


@pytest.fixture
def mlflow_user(mlflow_server: MlflowAuthServer) -> tuple[str, str]:
    username = f"docs-{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(18)
    mlflow_server.create_user(username, password)
    return username, password


@pytest.fixture
def mlflow_globals() -> Iterator[None]:
    """MLflow keeps the active experiment in a global and in MLFLOW_EXPERIMENT_ID: leave
    neither behind for the tests that follow."""
    from mlflow.tracking import fluent

    yield
    while fluent.active_run() is not None:
        fluent.end_run()
    fluent._active_experiment_id = None
    os.environ.pop("MLFLOW_EXPERIMENT_ID", None)


def mlflow_env(server: MlflowAuthServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_AUTH", "mlflow_secrets_auth")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def vault_setup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Getting started's setup: the user's password in OpenBao, a token with the documented
    policy, the documented variables. Returns the secret values."""
    openbao: OpenBaoServer = request.getfixturevalue("openbao")
    server: MlflowAuthServer = request.getfixturevalue("mlflow_server")
    username, password = request.getfixturevalue("mlflow_user")
    policy_text = first_block(DOCS / "stores" / "vault.md", "hcl")
    assert f'path "secret/data/{VAULT_SECRET_PATH.split("/", 1)[1]}"' in policy_text
    policy = f"docs-mlflow-read-{uuid.uuid4().hex[:8]}"
    openbao.create_policy(policy, policy_text)
    token = openbao.create_token([policy])
    mount, path = VAULT_SECRET_PATH.split("/", 1)
    openbao.write_secret(mount, path, {"username": username, "password": password})
    mlflow_env(server, monkeypatch)
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "vault")
    monkeypatch.setenv("VAULT_ADDR", openbao.addr)
    monkeypatch.setenv("VAULT_TOKEN", token)
    monkeypatch.setenv("MLFLOW_VAULT_SECRET_PATH", VAULT_SECRET_PATH)
    return [password, token]


def aws_setup(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A bearer token in Secrets Manager; an IAM user with only the documented policy."""
    moto: MotoServer = request.getfixturevalue("moto_server")
    server: MlflowAuthServer = request.getfixturevalue("mlflow_server")
    username, _ = request.getfixturevalue("mlflow_user")
    token = f"docs-token-{secrets.token_urlsafe(16)}"
    server.set_tokens({token: username})
    name = f"{DOCUMENTED_SECRET_NAME}-docs-{uuid.uuid4().hex[:8]}"
    secret = moto.create_secret(json.dumps({"token": token}), name=name)
    policy = json.loads(first_block(DOCS / "stores" / "aws-secrets-manager.md", "json"))
    (read,) = [s for s in policy["Statement"] if s["Action"] == "secretsmanager:GetSecretValue"]
    # The documented resource, for this secret's name and region, matches its real ARN (with
    # the six random characters Secrets Manager appends)...
    resource = str(read["Resource"]).replace("eu-west-1", REGION)
    resource = resource.replace(f":secret:{DOCUMENTED_SECRET_NAME}-", f":secret:{name}-")
    assert fnmatch.fnmatchcase(secret.arn, resource), (secret.arn, resource)
    # ... but moto checks Secrets Manager actions against the resource "*" only, so for moto the
    # statement names that; the actions are the documented ones.
    read["Resource"] = "*"
    iam = moto.client("iam")
    user = f"docs-reader-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="mlflow-read", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    for variable, value in moto.env().items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.setenv("AWS_REGION", REGION)
    mlflow_env(server, monkeypatch)
    monkeypatch.setenv("MLFLOW_SECRETS_AUTH_ENABLE", "aws-secrets-manager")
    monkeypatch.setenv("MLFLOW_AWS_SECRET_NAME", name)
    return [token, key["SecretAccessKey"]]


def install_modules(modules: list[Block], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for block in modules:
        assert block.marker is not None
        name = block.marker.split(":", 1)[1].split()[1]
        package = tmp_path / "snippet-modules" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(block.code, encoding="utf-8")
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path / "snippet-modules"))


def execute(block: Block) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": f"doc_snippet_{block.line}"}
    exec(compile(block.code, block.where, "exec"), namespace)
    return namespace


@pytest.mark.parametrize(
    ("block", "modules"),
    SNIPPETS,
    ids=[f"{b.page.relative_to(DOCS)}:{b.line}" for b, _ in SNIPPETS],
)
def test_runnable_snippet(
    block: Block,
    modules: list[Block],
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    leak_check: LeakCheck,
    mlflow_globals: None,
) -> None:
    install_modules(modules, tmp_path, monkeypatch)
    what = kind(block)
    if what == "pytest":
        namespace = execute(block)
        tests = [f for n, f in namespace.items() if n.startswith("test_") and callable(f)]
        assert tests, f"{block.where}: no test function"
        for test in tests:
            names = inspect.signature(test).parameters
            test(**{name: request.getfixturevalue(name) for name in names})
        return
    secret_values = {"vault": vault_setup, "aws": aws_setup}[what](request, monkeypatch)
    if what == "aws":
        moto: MotoServer = request.getfixturevalue("moto_server")
        leak_check.begin()
        with moto.iam_enforced():
            execute(block)
    else:
        leak_check.begin()
        execute(block)
    leak_check.assert_clean(secret_values)
