"""Every example in examples/ runs, or is checked, as a user would meet it, so none can rot.

The local examples run as their READMEs say (`python examples/<name>/run.py`, from the project
root), as subprocesses. They use the session's MLflow server through EXAMPLE_MLFLOW_URL (one MLflow
start serves them all); one of them also starts its own server, as a user's run does. Each must
exit 0, print its outcome, set only variables its store declares (the ones its README lists),
leave a run on the server logged as its user, print no secret even at DEBUG, and stop what it
started.

The Kubernetes manifests and CI pipelines cannot run here, so they are parsed and checked against
each other and against the variables the plugin reads; their `vault-setup.sh` scripts run against
a fresh OpenBao (the only change: an issuer's key given instead of fetched from github.com or
gitlab.com), and an MLflow run is logged with each one's environment and a token shaped like its
platform's: a token its Vault role must refuse is refused.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa

from mlflow_secrets_auth.backends import BUILTIN_ORDER, load_store
from mlflow_secrets_auth.backends.base import CommonSettings
from mlflow_secrets_auth.errors import BackendError
from mlflow_secrets_auth.settings import GENERAL_VARIABLES

from support.github_oidc import GithubOidcEndpoint
from support.jwt_issuer import JwtIssuer, sign_rs256
from support.kubernetes import ServiceAccount
from support.mlflow_server import MlflowAuthServer, bearer_auth
from support.openbao import OpenBaoServer, find_bao_binary, openbao_unavailable_reason
from support.recording_server import RecordingServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
STORES = list(BUILTIN_ORDER)
MLFLOW_CLIENT_VARIABLES = {"MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_AUTH"}
#: What the examples set for their own output and isolation, never for the store.
EXAMPLE_ONLY = {"MLFLOW_EXPERIMENT_NAME", "XDG_CONFIG_HOME", "NO_PROXY", "no_proxy"}
_RUN = re.compile(r"^\s*\| run (?P<run_id>[0-9a-f]{32}) in experiment (?P<experiment>\S+)$", re.M)
_URL = re.compile(r"https?://127\.0\.0\.1:\d+")


def run_example(name: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`python examples/<name>/run.py` from the project root, with `env` added."""
    full = {**os.environ, "MLFLOW_SECRETS_LOG_LEVEL": "DEBUG", **env}
    if full.get("PYTHONPATH"):  # keep relative entries (`src`) meaning the same from ROOT
        entries = full["PYTHONPATH"].split(os.pathsep)
        full["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
    return subprocess.run(
        [sys.executable, f"examples/{name}/run.py"],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=240,
    )


def reuse(server: MlflowAuthServer) -> dict[str, str]:
    """The variables that make an example use `server` instead of starting its own."""
    return {
        "EXAMPLE_MLFLOW_URL": server.url,
        "EXAMPLE_MLFLOW_ADMIN_PASSWORD": server.admin_password,
        "EXAMPLE_MLFLOW_TOKENS_FILE": str(server.tokens_file),
    }


def printed_block(stdout: str, heading: str) -> dict[str, str]:
    """The `NAME=value` lines an example printed under `heading`."""
    block = stdout.split(heading, 1)[1].lstrip("\n")
    found: dict[str, str] = {}
    for line in block.splitlines():
        match = re.fullmatch(r"  ([A-Za-z_][A-Za-z0-9_]*)=(.*)", line)
        if match is None:
            break
        found[match[1]] = match[2]
    return found


def job_block(stdout: str) -> dict[str, str]:
    return printed_block(stdout, "The job's environment (what you set):")


def local_block(stdout: str) -> dict[str, str]:
    return printed_block(stdout, "or for this example's output:")


def readme_variables(name: str) -> set[str]:
    """The variables the README's "What the job sets" section exports."""
    text = (EXAMPLES / name / "README.md").read_text()
    assert "\n## What the job sets\n" in text, f"examples/{name}/README.md"
    section = text.split("\n## What the job sets\n", 1)[1].split("\n## ", 1)[0]
    exports = set(re.findall(r"^export ([A-Z_][A-Z0-9_]*)=", section, re.M))
    assert exports, f"examples/{name}/README.md lists no variables"
    return exports


def assert_run_logged(server: MlflowAuthServer, stdout: str) -> None:
    """The server has the run the example reported, created by the example's own user."""
    match = _RUN.search(stdout)
    assert match is not None, stdout[-3000:]
    run = server.admin_request("GET", f"/api/2.0/mlflow/runs/get?run_id={match['run_id']}")
    metrics = run["run"]["data"]["metrics"]
    assert [(m["key"], m["value"]) for m in metrics] == [("loss", 0.3)]
    user = re.search(r"OK \S+: every MLflow request was authenticated as '([^']+)'", stdout)
    assert user is not None
    experiment_id = run["run"]["info"]["experiment_id"]
    permission = server.admin_request(
        "GET",
        f"/api/3.0/mlflow/users/permissions/get?username={user[1]}"
        f"&resource_type=experiment&resource_id={experiment_id}",
    )
    assert permission["permission"] == "MANAGE"  # the experiment's creator: the example's user


def assert_all_stopped(stdout: str, keep: str | None = None) -> None:
    """No server an example printed the address of still accepts connections."""
    for url in set(_URL.findall(stdout)) - {keep}:
        parts = urlsplit(url)
        with socket.socket() as sock:
            sock.settimeout(2.0)
            assert sock.connect_ex((parts.hostname or "", parts.port or 0)) != 0, url


@pytest.mark.parametrize("store", STORES)
def test_store_example_runs_with_the_stores_declared_variables(
    store: str, mlflow_server: MlflowAuthServer
) -> None:
    if store == "vault" and (reason := openbao_unavailable_reason()):
        pytest.skip(reason)

    done = run_example(store, reuse(mlflow_server))

    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert f"OK {store}: every MLflow request was authenticated as " in done.stdout
    assert f"with the credential from the '{store}' store; no secret value appeared" in done.stdout
    assert "Authentication successful (provider=" in done.stdout  # the plugin's own account
    assert "DEBUG: Secret read (provider=" in done.stdout  # the leak check saw every step
    job, local = job_block(done.stdout), local_block(done.stdout)
    declared = {v.name for v in load_store(store).variables}
    assert job["MLFLOW_SECRETS_AUTH_ENABLE"] == store
    assert job["MLFLOW_TRACKING_AUTH"] == "mlflow_secrets_auth"
    assert set(job) - MLFLOW_CLIENT_VARIABLES - set(GENERAL_VARIABLES) <= declared
    assert set(local) - EXAMPLE_ONLY - set(GENERAL_VARIABLES) <= declared
    assert set(job) == readme_variables(store)  # the README shows what the job sets
    for name in ("VAULT_TOKEN", "IDENTITY_HEADER"):
        if name in job or name in local:
            assert {**job, **local}[name] == "(a secret: not shown)"
    assert_run_logged(mlflow_server, done.stdout)
    assert mlflow_server.admin_password not in done.stdout + done.stderr
    assert_all_stopped(done.stdout, keep=mlflow_server.url)


def test_an_example_starts_and_stops_its_own_mlflow_server() -> None:
    done = run_example("file", {})

    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "Starting an MLflow tracking server with authentication" in done.stdout
    assert "OK file: every MLflow request was authenticated as " in done.stdout
    assert done.stdout.rstrip().endswith("Stopped the MLflow server")
    assert_all_stopped(done.stdout)


# --- the bearer-token MLflow server ------------------------------------------------------------


def test_bearer_server_example_authenticates_with_a_token_and_revokes_it(
    mlflow_server: MlflowAuthServer,
) -> None:
    done = run_example("mlflow-bearer-server", reuse(mlflow_server))

    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert "Authentication successful (provider=file, auth_mode=bearer)" in done.stdout
    assert "OK mlflow-bearer-server: every MLflow request was authenticated as " in done.stdout
    assert re.search(r"Revoked 1 token\(s\) of '[^']+': it now gets HTTP 401", done.stdout)
    assert_run_logged(mlflow_server, done.stdout)
    assert set(job_block(done.stdout)) == readme_variables("mlflow-bearer-server")


def test_bearer_module_issues_tokens_whose_digest_alone_is_stored(tmp_path: Path) -> None:
    module = EXAMPLES / "mlflow-bearer-server" / "mlflow_bearer_auth.py"
    tokens = tmp_path / "tokens.json"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(module), *args, "--tokens-file", str(tokens)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    first, second = cli("issue", "alice"), cli("issue", "bob")
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    alice, bob = first.stdout.strip(), second.stdout.strip()
    assert len(alice) >= 40 and alice != bob
    stored = tokens.read_text()
    assert alice not in stored and bob not in stored
    digest = bearer_auth().token_digest
    assert bearer_auth().read_digests(str(tokens)) == {digest(alice): "alice", digest(bob): "bob"}

    revoked = cli("revoke", "alice")

    assert revoked.returncode == 0 and "revoked 1 token(s) of alice" in revoked.stderr
    assert bearer_auth().read_digests(str(tokens)) == {digest(bob): "bob"}


# --- Kubernetes --------------------------------------------------------------------------------

KUBERNETES = EXAMPLES / "kubernetes"


def manifests(path: Path) -> list[dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert docs and all(isinstance(d, dict) and d.get("apiVersion") and d.get("kind") for d in docs)
    return docs


def the_job(path: Path) -> dict[str, Any]:
    (job,) = manifests(path)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    return job


def container_env(job: dict[str, Any]) -> dict[str, str]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e["value"] for e in container["env"]}


def container_mounts(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (container,) = job["spec"]["template"]["spec"]["containers"]
    return {m["name"]: m for m in container["volumeMounts"]}


def assert_store_variables(env: dict[str, str], store: str) -> None:
    assert env["MLFLOW_TRACKING_AUTH"] == "mlflow_secrets_auth"
    assert env["MLFLOW_SECRETS_AUTH_ENABLE"] == store
    declared = {v.name for v in load_store(store).variables}
    assert set(env) - MLFLOW_CLIENT_VARIABLES - set(GENERAL_VARIABLES) <= declared


def test_kubernetes_vault_manifests_agree_with_the_vault_setup() -> None:
    docs = manifests(KUBERNETES / "vault" / "serviceaccount.yaml")
    (account,) = [d for d in docs if d["kind"] == "ServiceAccount"]
    job = the_job(KUBERNETES / "vault" / "job.yaml")
    pod = job["spec"]["template"]["spec"]
    env = container_env(job)
    script = (KUBERNETES / "vault" / "vault-setup.sh").read_text()
    policy = (KUBERNETES / "vault" / "mlflow-trainer.hcl").read_text()

    assert_store_variables(env, "vault")
    assert "VAULT_TOKEN" not in env  # the pod logs in by itself
    name, namespace = account["metadata"]["name"], account["metadata"]["namespace"]
    assert (pod["serviceAccountName"], job["metadata"]["namespace"]) == (name, namespace)
    role = env["MLFLOW_VAULT_K8S_ROLE"]
    assert f"vault write auth/kubernetes/role/{role} \\" in script
    assert f"bound_service_account_names={name} \\" in script
    assert f"bound_service_account_namespaces={namespace} \\" in script
    (volume,) = pod["volumes"]
    (source,) = volume["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert f"audience={token['audience']} \\" in script
    mount = container_mounts(job)[volume["name"]]
    assert env["MLFLOW_VAULT_K8S_TOKEN_PATH"] == f"{mount['mountPath']}/{token['path']}"
    mount_name, _, path = env["MLFLOW_VAULT_SECRET_PATH"].partition("/")
    assert f'path "{mount_name}/data/{path}"' in policy
    assert f"vault kv put {env['MLFLOW_VAULT_SECRET_PATH']} " in script


def test_kubernetes_file_store_job_mounts_the_secret_read_only_for_its_owner() -> None:
    job = the_job(KUBERNETES / "file-store" / "job.yaml")
    pod = job["spec"]["template"]["spec"]
    env = container_env(job)
    readme = (KUBERNETES / "README.md").read_text()

    assert_store_variables(env, "file")
    (volume,) = pod["volumes"]
    assert volume["secret"]["defaultMode"] == 0o400
    (item,) = volume["secret"]["items"]
    mount = container_mounts(job)[volume["name"]]
    assert "subPath" not in mount and mount["readOnly"] is True  # a subPath is never updated
    assert env["MLFLOW_FILE_SECRET_PATH"] == f"{mount['mountPath']}/{item['path']}"
    assert pod["securityContext"]["fsGroup"]  # the non-root user can read a 0400 Secret file
    secret = volume["secret"]["secretName"]
    assert f"kubectl -n {job['metadata']['namespace']} create secret generic {secret}" in readme
    assert f"--from-literal={item['key']}=" in readme


VAULT_CLI = """\
#!/usr/bin/env bash
# OpenBao's CLI, which takes Vault's arguments. An OIDC discovery URL (github.com, gitlab.com) is
# replaced by the test issuer's public key: the one change, since the test has no network.
args=()
for arg in "$@"; do
    case "$arg" in
        oidc_discovery_url=*) args+=("jwt_validation_pubkeys=@$TEST_ISSUER_KEY_FILE") ;;
        *) args+=("$arg") ;;
    esac
done
exec {bao} "${{args[@]}}"
"""


def run_setup_script(
    script: Path, vault: OpenBaoServer, tmp_path: Path, env: dict[str, str]
) -> None:
    """Run a `vault-setup.sh` as its README says, with `vault` being OpenBao's CLI."""
    bao = find_bao_binary()
    assert bao is not None
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    cli = bin_dir / "vault"
    cli.write_text(VAULT_CLI.format(bao=shlex.quote(bao)))
    cli.chmod(0o755)
    done = subprocess.run(
        [str(script)],
        env={
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "HOME": str(tmp_path),
            "VAULT_ADDR": vault.addr,
            "VAULT_TOKEN": vault.root_token,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    for secret in (env.get("MLFLOW_PASSWORD"), vault.root_token):
        assert secret and secret not in done.stdout + done.stderr


def log_run_as_the_job(
    server: MlflowAuthServer, job_env: dict[str, str], local_env: dict[str, str]
) -> str:
    """Run log_run.py with a pipeline's or manifest's environment, the local addresses in
    `local_env` taking precedence; the run's output (which must hold no secret)."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "log_run.py")],
        env={
            **os.environ,
            **job_env,
            "MLFLOW_TRACKING_URI": server.url,
            "MLFLOW_EXPERIMENT_NAME": f"ci-example-{uuid.uuid4().hex[:8]}",
            "MLFLOW_SECRETS_LOG_LEVEL": "DEBUG",
            "NO_PROXY": "127.0.0.1,localhost",
            **local_env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "Authentication successful (provider=vault, auth_mode=basic)" in output
    return output


def assert_logged_as(server: MlflowAuthServer, output: str, username: str) -> None:
    match = re.search(r"^run ([0-9a-f]{32}) in experiment", output, re.M)
    assert match is not None, output[-2000:]
    run = server.admin_request("GET", f"/api/2.0/mlflow/runs/get?run_id={match[1]}")
    experiment_id = run["run"]["info"]["experiment_id"]
    permission = server.admin_request(
        "GET",
        f"/api/3.0/mlflow/users/permissions/get?username={username}"
        f"&resource_type=experiment&resource_id={experiment_id}",
    )
    assert permission["permission"] == "MANAGE"


def new_mlflow_user(server: MlflowAuthServer, prefix: str) -> tuple[str, str]:
    username, password = f"{prefix}-{uuid.uuid4().hex[:6]}", f"pw-{uuid.uuid4().hex}"
    server.create_user(username, password)
    return username, password


def service_account_token(namespace: str, name: str, audience: str) -> str:
    """A projected service-account token as the kubelet writes it (both claim layouts)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    return sign_rs256(
        key,
        {
            "aud": [audience],
            "iss": "https://kubernetes.default.svc",
            "sub": f"system:serviceaccount:{namespace}:{name}",
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "kubernetes.io": {
                "namespace": namespace,
                "serviceaccount": {"name": name, "uid": f"uid-{name}"},
            },
            "kubernetes.io/serviceaccount/namespace": namespace,
            "kubernetes.io/serviceaccount/service-account.name": name,
            "kubernetes.io/serviceaccount/service-account.uid": f"uid-{name}",
        },
    )


def test_vault_setup_script_lets_the_jobs_service_account_log_an_mlflow_run(
    mlflow_server: MlflowAuthServer,
    recording_server: Callable[[], RecordingServer],
    tmp_path: Path,
) -> None:
    if reason := openbao_unavailable_reason():
        pytest.skip(reason)
    job = the_job(KUBERNETES / "vault" / "job.yaml")
    env = container_env(job)
    pod = job["spec"]["template"]["spec"]
    namespace, name = job["metadata"]["namespace"], pod["serviceAccountName"]
    audience = pod["volumes"][0]["projected"]["sources"][0]["serviceAccountToken"]["audience"]
    jwt = service_account_token(namespace, name, audience)
    kubernetes_api = recording_server()
    kubernetes_api.set_default_response(
        201,
        {
            "kind": "TokenReview",
            "apiVersion": "authentication.k8s.io/v1",
            "status": {
                "authenticated": True,
                "user": {
                    "username": f"system:serviceaccount:{namespace}:{name}",
                    "uid": f"uid-{name}",
                    "groups": ["system:serviceaccounts"],
                },
                "audiences": [audience],
            },
        },
    )
    username, password = new_mlflow_user(mlflow_server, "k8s-trainer")
    token_file = tmp_path / "token"
    token_file.write_text(jwt)
    (tmp_path / "ca.crt").write_text(ServiceAccount("kube-system", "vault-reviewer").ca_pem)
    (tmp_path / "reviewer.jwt").write_text("reviewer-token")

    with OpenBaoServer() as vault:  # its own: the script mounts auth at the default path
        run_setup_script(
            KUBERNETES / "vault" / "vault-setup.sh",
            vault,
            tmp_path,
            {
                # Vault outside the cluster: the script's second form.
                "KUBERNETES_HOST": kubernetes_api.url,
                "KUBERNETES_CA_CERT": str(tmp_path / "ca.crt"),
                "TOKEN_REVIEWER_JWT_FILE": str(tmp_path / "reviewer.jwt"),
                "MLFLOW_USERNAME": username,
                "MLFLOW_PASSWORD": password,
            },
        )
        output = log_run_as_the_job(
            mlflow_server,
            env,
            {"VAULT_ADDR": vault.addr, "MLFLOW_VAULT_K8S_TOKEN_PATH": str(token_file)},
        )

    for secret in (password, jwt, vault.root_token):
        assert secret not in output
    reviews = kubernetes_api.requests_to("/apis/authentication.k8s.io/v1/tokenreviews")
    assert [json.loads(r.body)["spec"]["token"] for r in reviews] == [jwt]
    assert reviews[0].header("Authorization") == "Bearer reviewer-token"
    assert_logged_as(mlflow_server, output, username)


# --- CI ----------------------------------------------------------------------------------------

CI = EXAMPLES / "ci"


def role_config(script: str) -> dict[str, Any]:
    """The JSON a setup script writes as its Vault role."""
    match = re.search(r"<<'JSON'\n(.*?)\nJSON\n", script, re.S)
    assert match is not None
    config: dict[str, Any] = json.loads(match[1])
    return config


def configured_issuer(script: str) -> str:
    match = re.search(r"bound_issuer=(\S+)", script)
    assert match is not None
    return match[1]


def vault_fetch_error(env: dict[str, str]) -> BackendError:
    """What the vault store says when it fetches with `env` (in this process)."""
    store_class = load_store("vault")
    common = CommonSettings("vault", "auto", 300.0, 10.0)
    store = store_class(store_class.load_settings(env, common))
    with pytest.raises(BackendError) as info:
        store.fetch()
    return info.value


def test_github_workflow_and_its_vault_setup_log_an_mlflow_run(
    mlflow_server: MlflowAuthServer, tmp_path: Path
) -> None:
    if reason := openbao_unavailable_reason():
        pytest.skip(reason)
    workflow = yaml.safe_load((CI / "github-actions" / "train.yml").read_text())
    script = (CI / "github-actions" / "vault-setup.sh").read_text()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads the key `on` as true
    assert "push" in triggers
    assert workflow["permissions"]["id-token"] == "write"
    (job,) = workflow["jobs"].values()
    env = {k: str(v) for k, v in job["env"].items()}
    assert_store_variables(env, "vault")
    assert [s["run"] for s in job["steps"] if "run" in s][-1] == "python train.py"
    role = role_config(script)
    mount, role_name = env["MLFLOW_VAULT_JWT_MOUNT"], env["MLFLOW_VAULT_JWT_ROLE"]
    assert f"vault write auth/{mount}/role/{role_name} - <<'JSON'" in script
    assert role["bound_audiences"] == [env["MLFLOW_VAULT_JWT_AUDIENCE"]]
    assert role["user_claim"] in role["bound_claims"]
    assert configured_issuer(script) == "https://token.actions.githubusercontent.com"
    issuer = JwtIssuer(configured_issuer(script))
    (tmp_path / "issuer.pem").write_text(issuer.public_pem)
    username, password = new_mlflow_user(mlflow_server, "github-trainer")
    claims = role["bound_claims"]
    subject = f"repo:{claims['repository']}:ref:{claims['ref']}"

    with (
        OpenBaoServer() as vault,
        GithubOidcEndpoint(issuer, subject, claims) as runner,
        GithubOidcEndpoint(issuer, subject, {**claims, "ref": "refs/heads/feature"}) as branch,
    ):
        run_setup_script(
            CI / "github-actions" / "vault-setup.sh",
            vault,
            tmp_path,
            {
                "TEST_ISSUER_KEY_FILE": str(tmp_path / "issuer.pem"),
                "MLFLOW_USERNAME": username,
                "MLFLOW_PASSWORD": password,
            },
        )
        output = log_run_as_the_job(mlflow_server, env, {"VAULT_ADDR": vault.addr, **runner.env()})
        # A job on another branch gets a valid token too; the role's bound claims refuse it.
        refused = vault_fetch_error({**env, "VAULT_ADDR": vault.addr, **branch.env()})

    assert [r.audience for r in runner.requests] == [env["MLFLOW_VAULT_JWT_AUDIENCE"]]
    for secret in (password, runner.request_token, *runner.issued):
        assert secret not in output
    assert_logged_as(mlflow_server, output, username)
    assert refused.step == "login"
    assert f"MLFLOW_VAULT_JWT_ROLE={role_name}" in str(refused)


def gitlab_jobs() -> dict[str, dict[str, Any]]:
    """The pipeline's jobs, with what they extend merged in (as GitLab does for these keys)."""
    pipeline = yaml.safe_load((CI / "gitlab" / "gitlab-ci.yml").read_text())
    jobs = {}
    for name, job in pipeline.items():
        if name.startswith(".") or not isinstance(job, dict):
            continue
        base = pipeline[job["extends"]] if "extends" in job else {}
        jobs[name] = {
            **base,
            **job,
            "variables": {**base.get("variables", {}), **job.get("variables", {})},
        }
    return jobs


def test_gitlab_jobs_and_their_vault_setup_log_an_mlflow_run(
    mlflow_server: MlflowAuthServer, tmp_path: Path
) -> None:
    if reason := openbao_unavailable_reason():
        pytest.skip(reason)
    jobs = gitlab_jobs()
    script = (CI / "gitlab" / "vault-setup.sh").read_text()
    role = role_config(script)
    assert set(jobs) == {"train", "train-token-file"}
    for job in jobs.values():
        env = {k: str(v) for k, v in job["variables"].items()}
        assert_store_variables(env, "vault")
        mount, role_name = env["MLFLOW_VAULT_JWT_MOUNT"], env["MLFLOW_VAULT_JWT_ROLE"]
        assert f"vault write auth/{mount}/role/{role_name} - <<'JSON'" in script
        (token,) = job["id_tokens"].values()
        assert [token["aud"]] == role["bound_audiences"]
        assert job["script"][-1] == "python train.py"
    assert "MLFLOW_VAULT_JWT_TOKEN" in jobs["train"]["id_tokens"]
    file_job = jobs["train-token-file"]
    (file_token_variable,) = file_job["id_tokens"]
    assert f'"${file_token_variable}" > "$MLFLOW_VAULT_JWT_TOKEN_PATH"' in file_job["script"][0]
    assert f"unset {file_token_variable}" in file_job["script"]
    assert role["user_claim"] in role["bound_claims"]
    issuer = JwtIssuer(configured_issuer(script))
    (tmp_path / "issuer.pem").write_text(issuer.public_pem)
    username, password = new_mlflow_user(mlflow_server, "gitlab-trainer")
    claims = role["bound_claims"]
    subject = f"project_path:{claims['project_path']}:ref_type:branch:ref:{claims['ref']}"
    aud = role["bound_audiences"][0]
    jwt = issuer.token(subject, aud, **claims)
    # The file form: the job's own command writes the token file, private to its owner.
    token_path = tmp_path / "vault-id-token"
    wrote = subprocess.run(
        ["bash", "-c", file_job["script"][0]],
        env={
            **os.environ,
            file_token_variable: jwt,
            "MLFLOW_VAULT_JWT_TOKEN_PATH": str(token_path),
        },
        timeout=30,
    )
    assert wrote.returncode == 0 and token_path.read_text() == jwt
    assert token_path.stat().st_mode & 0o777 == 0o600

    with OpenBaoServer() as vault:
        run_setup_script(
            CI / "gitlab" / "vault-setup.sh",
            vault,
            tmp_path,
            {
                "TEST_ISSUER_KEY_FILE": str(tmp_path / "issuer.pem"),
                "MLFLOW_USERNAME": username,
                "MLFLOW_PASSWORD": password,
            },
        )
        local = {"VAULT_ADDR": vault.addr}
        variable_env = {k: str(v) for k, v in jobs["train"]["variables"].items()}
        in_variable = log_run_as_the_job(
            mlflow_server, variable_env, {**local, "MLFLOW_VAULT_JWT_TOKEN": jwt}
        )
        file_env = {k: str(v) for k, v in file_job["variables"].items()}
        in_file = log_run_as_the_job(
            mlflow_server, file_env, {**local, "MLFLOW_VAULT_JWT_TOKEN_PATH": str(token_path)}
        )
        unprotected = issuer.token(subject, aud, **{**claims, "ref_protected": "false"})
        refused = vault_fetch_error(
            {**variable_env, **local, "MLFLOW_VAULT_JWT_TOKEN": unprotected}
        )

    for output in (in_variable, in_file):
        assert jwt not in output and password not in output
        assert_logged_as(mlflow_server, output, username)
    assert refused.step == "login"
