"""The README and the configuration reference document every variable the package reads and the
CLI commands it offers; the README's links work where it is shown without the repository's files
(the package index page), and its map of docs/ names every page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlflow_secrets_auth.backends import BUILTIN_ORDER, load_store
from mlflow_secrets_auth.settings import known_variables

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
# The configuration reference of the docs site lists every variable with its default; the README
# lists them compactly. A variable documented in either counts.
_REFERENCE = ROOT / "docs" / "configuration.md"
DOCUMENTED = README + (_REFERENCE.read_text() if _REFERENCE.is_file() else "")
REPOSITORY = "https://github.com/mlflow-secrets-auth/mlflow-secrets-auth"
_LOADED = [load_store(name) for name in BUILTIN_ORDER]
# The SDKs read these themselves; the docs point to each SDK's own chain instead.
SDK_OWNED = {v.name for store in _LOADED for v in store.variables if v.sdk}
# Inline links and images, `[text](target)`, and reference definitions, `[label]: target`.
_LINK = re.compile(r"\]\(([^)\s]+)[^)]*\)|^\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def readme_links() -> list[str]:
    return [inline or reference for inline, reference in _LINK.findall(README)]


@pytest.mark.parametrize("name", sorted(set(known_variables(BUILTIN_ORDER)) - SDK_OWNED))
def test_variable_is_documented(name: str) -> None:
    # The README's tables abbreviate families: the enable flags after the first, and the
    # per-store <PREFIX>_AUTH_MODE/_TTL_SEC pairs.
    short = name.removeprefix("MLFLOW_SECRETS_AUTH_ENABLE") if "ENABLE_" in name else name
    stores = ("VAULT", "AWS", "AZURE", "GCP", "FILE", "EXEC")
    prefix_forms = {
        name.replace(store, "{" + ",".join(stores) + "}", 1)
        for store in stores
        if name.startswith(f"MLFLOW_{store}_") and name.endswith(("_AUTH_MODE", "_TTL_SEC"))
    }
    assert any(form in DOCUMENTED for form in {name, f"`{short}`", *prefix_forms}), name


@pytest.mark.parametrize("command", ["info", "doctor", "doctor --dry-run", "cache clear"])
def test_cli_command_is_documented(command: str) -> None:
    assert f"mlflow-secrets-auth {command}" in README


def test_readme_links_are_absolute() -> None:
    links = readme_links()
    assert len(links) > 10, links
    relative = [link for link in links if not link.startswith("https://")]
    assert not relative, f"relative links break on the package index page: {relative}"


def test_readme_links_into_the_repository_reach_its_files_on_main() -> None:
    own = [link for link in readme_links() if link.startswith(REPOSITORY)]
    assert own
    missing = []
    for link in own:
        match = re.fullmatch(rf"{re.escape(REPOSITORY)}/(blob|tree)/main/([^#?]+)(#.*)?", link)
        assert match is not None, f"{link}: link to a file as {REPOSITORY}/blob/main/<path>"
        kind, path = match.group(1), match.group(2)
        target = ROOT / path
        if not (target.is_file() if kind == "blob" else target.is_dir()):
            missing.append(link)
    assert not missing, f"no such file or folder in the repository: {missing}"


def test_readme_maps_every_page_of_the_docs() -> None:
    linked = {
        link.removeprefix(f"{REPOSITORY}/blob/main/")
        for link in readme_links()
        if link.startswith(f"{REPOSITORY}/blob/main/docs/")
    }
    pages = {
        page.relative_to(ROOT).as_posix()
        for page in (ROOT / "docs").rglob("*.md")
        if "_snippets" not in page.parts
        # The README links the changelog at the repository root, which this page shows.
        and page.name != "changelog.md"
    }
    assert pages - linked == set(), "pages of docs/ missing from the README's map"
