"""The documentation says what the code does: variables and profile keys in both directions,
every command line parses, every CLI option and doctor check is documented, every page is in
the nav, and the configuration and policy examples are well formed."""

from __future__ import annotations

import ast
import json
import re
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from mlflow_secrets_auth.backends import BUILTIN_ORDER, load_store
from mlflow_secrets_auth.backends.aws import AwsSettings
from mlflow_secrets_auth.backends.azure import AzureSettings
from mlflow_secrets_auth.backends.exec import ExecSettings
from mlflow_secrets_auth.backends.file import FileSettings
from mlflow_secrets_auth.backends.gcp import GcpSettings
from mlflow_secrets_auth.backends.vault_settings import VaultSettings
from mlflow_secrets_auth.clear_marker import CACHE_DIR_VARIABLE
from mlflow_secrets_auth.cli import main
from mlflow_secrets_auth.profiles import (
    _COMMON_KEYS,
    _GENERAL_KEYS,
    CONFIG_VARIABLE,
    FILE_VARIABLES,
    PROFILE_VARIABLE,
    ProfileFile,
    load_profiles,
)
from mlflow_secrets_auth.settings import (
    GENERAL_VARIABLES,
    enable_flag,
    known_variables,
    load_general,
)

from support.doc_pages import (
    DOCS,
    README,
    ROOT,
    Block,
    blocks,
    cli_invocations,
    inline_code,
    pages,
    prose,
    section,
    tables,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SRC = ROOT / "src" / "mlflow_secrets_auth"
CONFIGURATION = (DOCS / "configuration.md").read_text(encoding="utf-8")
TROUBLESHOOTING = (DOCS / "troubleshooting.md").read_text(encoding="utf-8")
CLI_PAGE = (DOCS / "cli.md").read_text(encoding="utf-8")
ENV_NAME = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")
STORES = [load_store(name) for name in BUILTIN_ORDER]


def source_literals() -> set[str]:
    """Every string constant in the package that looks like an environment variable name: the
    names the code passes to ``os.environ``, ``env.get`` and friends are among them."""
    found: set[str] = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and ENV_NAME.fullmatch(node.value):
                found.add(node.value)
    return found


#: Every variable the plugin itself reads (the stores' declarations included).
DOCUMENTED_BY_CONTRACT = {
    *known_variables(),
    *GENERAL_VARIABLES,
    CONFIG_VARIABLE,
    PROFILE_VARIABLE,
    CACHE_DIR_VARIABLE,
}
#: What a documented name may be: the above, or a name the code reads elsewhere (MLflow's own
#: tracking variables, the proxy variables, the XDG directories).
READ_BY_CODE = DOCUMENTED_BY_CONTRACT | set(FILE_VARIABLES) | source_literals()


def backticked(text: str) -> set[str]:
    return {span for span in inline_code(text)}


def variable_key_map() -> dict[str, str | None]:
    """Variable → its profile key, as the code defines it."""
    mapping: dict[str, str | None] = dict.fromkeys(DOCUMENTED_BY_CONTRACT)
    for store in STORES:
        for variable in store.variables:
            mapping[variable.name] = variable.key
        mapping[f"{store.prefix}_AUTH_MODE"] = "auth_mode"
        mapping[f"{store.prefix}_TTL_SEC"] = "ttl_sec"
    for key, variable_name in _GENERAL_KEYS.items():
        mapping[variable_name] = key
    mapping["MLFLOW_SECRETS_ALLOWED_HOSTS"] = "hosts"
    return mapping


def all_profile_keys() -> set[str]:
    keys = {v.key for store in STORES for v in store.variables if v.key}
    return keys | set(_COMMON_KEYS)


# --- variables, both directions ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DOCUMENTED_BY_CONTRACT))
def test_every_variable_the_code_reads_is_in_the_configuration_reference(name: str) -> None:
    assert f"`{name}`" in CONFIGURATION, f"{name} is read by the code but not documented"


def test_the_enable_flags_are_listed_one_by_one() -> None:
    for name in BUILTIN_ORDER:
        assert f"`{enable_flag(name)}`" in CONFIGURATION


def test_every_variable_named_in_the_configuration_reference_is_read_by_the_code() -> None:
    named = {span for span in backticked(CONFIGURATION) if ENV_NAME.fullmatch(span)}
    for table in tables(CONFIGURATION):
        for row in table[1:]:
            named |= {s for s in inline_code(row[0]) if re.fullmatch(r"[A-Z][A-Z0-9_]*", s)}
    assert len(named) > 100, "the page lost its tables"
    unknown = sorted(named - READ_BY_CODE)
    assert not unknown, f"documented but read by nothing: {unknown}"


#: MLflow server settings a page may show when it describes the server side.
MLFLOW_SERVER_VARIABLES = {"MLFLOW_AUTH_CONFIG_PATH", "MLFLOW_FLASK_SERVER_SECRET_KEY"}


def test_every_mlflow_variable_on_any_page_exists() -> None:
    """A typo such as MLFLOW_VAULT_K8S_ROLES anywhere in the docs, code blocks included."""
    module = store_api_module().code
    acme = set(re.findall(r'Variable\(\s*"(MLFLOW_ACME_[A-Z_]+)"', module))
    assert acme, "the example store declares no variables"
    acme |= set(re.findall(r'prefix = "(MLFLOW_[A-Z]+)"', module))
    for page in pages():
        text = page.read_text(encoding="utf-8")
        names = set(re.findall(r"\bMLFLOW_[A-Z0-9_]*[A-Z0-9]\b", text))
        allowed = READ_BY_CODE | MLFLOW_SERVER_VARIABLES
        allowed |= acme if page.name == "store-api.md" else set()
        unknown = sorted(names - allowed)
        assert not unknown, f"{page.relative_to(ROOT)} names {unknown}, which nothing reads"


# --- profile keys, both directions -------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(all_profile_keys()))
def test_every_profile_key_is_in_the_configuration_reference(key: str) -> None:
    assert f"`{key}`" in CONFIGURATION, f"profile key {key} is not documented"


def test_each_documented_profile_key_belongs_to_its_variable() -> None:
    """In every table with a "profile key" column, the key given for a variable is the one the
    code maps it to; "—" means the variable has none. Every variable with a key has such a row."""
    mapping = variable_key_map()
    documented: dict[str, str | None] = {}
    for table in tables(CONFIGURATION):
        header = [cell.lower() for cell in table[0]]
        if "profile key" not in header:
            continue
        column = header.index("profile key")
        for row in table[1:]:
            variables = [s for s in inline_code(row[0]) if re.fullmatch(r"[A-Z][A-Z0-9_]*", s)]
            keys = [s for s in inline_code(row[column]) if re.fullmatch(r"[a-z][a-z0-9_]*", s)]
            assert variables, f"a row names no variable: {row}"
            for variable in variables:
                assert variable in mapping, f"{variable} has a profile-key row but no key in code"
                expected = mapping[variable]
                got = keys[0] if keys else None
                assert got == expected, f"{variable}: documented key {got}, code has {expected}"
                documented[variable] = got
    with_keys = {name for name, key in mapping.items() if key is not None}
    missing = sorted(with_keys - set(documented))
    assert not missing, f"variables with a profile key but no row saying so: {missing}"


def test_the_profile_keys_table_lists_only_real_keys() -> None:
    table_text = section(CONFIGURATION, "Profile keys")
    listed: set[str] = set()
    for table in tables(table_text):
        for row in table[1:]:
            listed |= {s for s in inline_code(row[0]) if re.fullmatch(r"[a-z][a-z0-9_]*", s)}
    assert listed == all_profile_keys()


# --- commands ----------------------------------------------------------------------------------


def documented_invocations() -> list[tuple[str, list[str]]]:
    found: list[tuple[str, list[str]]] = []
    for page in [*pages(), README]:
        where = str(page.relative_to(ROOT))
        for span in inline_code(prose(page)):
            found += [(where, args) for args in cli_invocations(span)]
        for block in blocks(page):
            if block.language in ("python", "toml", "json", "hcl", "text"):  # not shell
                continue
            for line in block.code.splitlines():
                found += [(block.where, args) for args in cli_invocations(line)]
    return found


INVOCATIONS = documented_invocations()


def test_the_docs_show_the_commands() -> None:
    shown = {tuple(args[:2]) for _, args in INVOCATIONS}
    for command in [("info",), ("doctor",), ("cache", "clear"), ("cache", "status")]:
        assert any(s[: len(command)] == command for s in shown), command


@pytest.mark.parametrize(
    ("where", "args"), INVOCATIONS, ids=[f"{w}:{' '.join(a)}" for w, a in INVOCATIONS]
)
def test_every_documented_command_line_parses(where: str, args: list[str]) -> None:
    """The command and its options exist: `--help` after them is accepted (click rejects an
    unknown command or option before it shows any help)."""
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, f"{where}: mlflow-secrets-auth {' '.join(args)}: {result.output}"
    assert "Usage:" in result.output or "version" in result.output


def cli_commands() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []

    def walk(prefix: str, command: click.Command) -> None:
        found.append((prefix, command))
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(f"{prefix} {name}".strip(), sub)

    walk("", main)
    return found


@pytest.mark.parametrize(("path", "command"), cli_commands(), ids=lambda v: str(v) or "main")
def test_every_command_and_option_is_in_the_cli_reference(path: str, command: Any) -> None:
    assert f"mlflow-secrets-auth {path}".strip() in CLI_PAGE
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts + param.secondary_opts:
                assert f"`{opt}" in CLI_PAGE or f"{opt}`" in CLI_PAGE, f"{path}: {opt}"


# --- doctor's checks ---------------------------------------------------------------------------


def doctor_check_ids() -> set[str]:
    """Every check id the doctor can report: the first argument of each Check(...) and
    run.guarded(...) call, and the ids of the credential chain's table."""
    ids: set[str] = set()
    for path in (SRC / "doctor").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and node.args:
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                first = node.args[0]
                if name in ("Check", "guarded", "_joined") and isinstance(first, ast.Constant):
                    ids.add(str(first.value))
            if isinstance(node, ast.Assign) and any(
                getattr(t, "id", None) == "_CHAIN_TITLES" for t in node.targets
            ):
                assert isinstance(node.value, ast.Tuple)
                for pair in node.value.elts:
                    assert isinstance(pair, ast.Tuple) and isinstance(pair.elts[0], ast.Constant)
                    ids.add(str(pair.elts[0].value))
    return ids


def test_the_check_ids_are_the_ones_the_docs_expect() -> None:
    assert doctor_check_ids() == {
        "configuration",
        "profiles",
        "backend_reachable",
        "login",
        "secret_read",
        "secret_format",
        "auth_header",
        "store_advice",
        "tracking_auth",
        "entry_point",
        "overrides",
        "allowlist",
        "dry_run",
    }


def test_troubleshooting_describes_every_check_and_only_real_ones() -> None:
    ids = doctor_check_ids()
    checks = tables(section(TROUBLESHOOTING, "The checks"))[0]
    described = [inline_code(row[0])[0] for row in checks[1:]]
    assert sorted(described) == sorted(ids)


def test_every_symptom_maps_to_real_checks_and_every_check_is_reached() -> None:
    ids = doctor_check_ids()
    symptoms = tables(section(TROUBLESHOOTING, "Symptoms, and the check that detects them"))[0]
    assert [c.lower() for c in symptoms[0][:2]] == ["symptom", "check"]
    used: set[str] = set()
    for row in symptoms[1:]:
        named = set(inline_code(row[1]))
        assert named <= ids, f"{row[0]}: unknown check ids {sorted(named - ids)}"
        used |= named
    assert used == ids, f"no symptom leads to {sorted(ids - used)}"
    assert len(symptoms) > 30


# --- the site ----------------------------------------------------------------------------------


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    in_nav = set(re.findall(r":\s*([\w./-]+\.md)\s*$", config, re.MULTILINE))
    on_disk = {str(p.relative_to(DOCS)) for p in pages()}
    assert in_nav == on_disk


def test_every_table_row_has_as_many_cells_as_its_header() -> None:
    """A stray '|' in a cell silently shifts a table's columns."""
    for page in [*pages(), README]:
        for table in tables(prose(page)):
            widths = {len(row) for row in table}
            assert len(widths) == 1, f"{page.relative_to(ROOT)}: {table[0]}"


def test_the_changelog_page_embeds_the_root_changelog() -> None:
    assert '--8<-- "CHANGELOG.md"' in (DOCS / "changelog.md").read_text(encoding="utf-8")


def test_json_and_toml_examples_parse() -> None:
    count = 0
    for page in pages():
        for block in blocks(page):
            if block.language == "json":
                json.loads(block.code)
                count += 1
            elif block.language == "toml":
                tomllib.loads(block.code)
                count += 1
    assert count >= 4


def test_the_iam_policy_grants_the_read_and_the_kms_decrypt() -> None:
    policy = json.loads(
        next(
            b for b in blocks(DOCS / "stores" / "aws-secrets-manager.md") if b.language == "json"
        ).code
    )
    actions = {s["Action"] for s in policy["Statement"] if s["Effect"] == "Allow"}
    assert actions == {"secretsmanager:GetSecretValue", "kms:Decrypt"}


def test_runnable_markers_precede_python_blocks() -> None:
    markers = [
        b for p in pages() for b in blocks(p) if b.marker and b.marker.startswith("runnable")
    ]
    assert all(b.language == "python" for b in markers)
    kinds = {b.marker.split(":", 1)[1].split()[0] for b in markers if b.marker}
    assert kinds == {"vault", "aws", "module", "pytest"}
    for page in pages():
        text = page.read_text(encoding="utf-8")
        assert text.count("<!-- runnable") == sum(
            1 for b in blocks(page) if b.marker and b.marker.startswith("runnable")
        ), f"{page}: a runnable marker is not directly before a code block"


def store_api_module() -> Block:
    """The example store's module, as the store API page shows it."""
    marked = [b for b in blocks(DOCS / "store-api.md") if b.marker and "module" in b.marker]
    assert len(marked) == 1
    return marked[0]


# --- the complete profiles file ----------------------------------------------------------------


def test_the_complete_profiles_file_loads_with_the_stores_own_loaders(tmp_path: Path) -> None:
    example = next(b for b in blocks(DOCS / "profiles.md") if b.marker == "profiles-example")
    config = tmp_path / "config.toml"
    config.write_text(example.code, encoding="utf-8")
    env = {CONFIG_VARIABLE: str(config), "HOME": str(tmp_path)}
    profiles = load_profiles(env, load_general(env), source=ProfileFile())
    by_name = {p.name: p for p in profiles.profiles}
    assert list(by_name) == ["prod", "gateway", "dev", "research", "local", "partner"]
    kinds = {name: type(p.settings) for name, p in by_name.items()}
    assert kinds == {
        "prod": VaultSettings,
        "gateway": AwsSettings,
        "dev": AzureSettings,
        "research": GcpSettings,
        "local": FileSettings,
        "partner": ExecSettings,
    }
    assert {p.backend for p in by_name.values()} == set(BUILTIN_ORDER)  # one per store
    prod = by_name["prod"].settings
    assert isinstance(prod, VaultSettings) and prod.login_method == "kubernetes"
    assert by_name["gateway"].settings.auth_mode == "bearer"
    assert by_name["research"].header_name == "X-Api-Key"
    assert by_name["partner"].allow_http is True
    assert by_name["local"].settings.ttl_sec == 30
    assert by_name["dev"].settings.ttl_sec == 300  # from [defaults]
    assert all(p.settings.timeout_sec == 5 for p in by_name.values())
    assert all(p.max_stale_sec == 1800 for p in by_name.values())
    # The routing the page describes.
    assert profiles.select("registry.corp.example", 8443) is by_name["prod"]
    assert profiles.select("scoring.gateway.corp.example", 443) is by_name["gateway"]
    assert profiles.select("unknown.example", 443) is None


def test_the_complete_profiles_file_pins_the_vault_login_despite_a_token(tmp_path: Path) -> None:
    """The page says auth_method keeps the Kubernetes login when VAULT_TOKEN is set."""
    example = next(b for b in blocks(DOCS / "profiles.md") if b.marker == "profiles-example")
    config = tmp_path / "config.toml"
    config.write_text(example.code, encoding="utf-8")
    env = {CONFIG_VARIABLE: str(config), "HOME": str(tmp_path), "VAULT_TOKEN": "s.example"}
    profiles = load_profiles(env, load_general(env), source=ProfileFile())
    prod = profiles.get("prod")
    assert prod is not None and isinstance(prod.settings, VaultSettings)
    assert prod.settings.login_method == "kubernetes"
