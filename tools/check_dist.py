"""Build the sdist and the wheel, and check what a user who installs them gets.

``make dist`` runs this:

1. ``uv build`` writes the sdist to ``dist/`` and builds the wheel from that sdist, so a file
   missing from the sdist fails here;
2. ``twine check --strict`` checks the metadata and that the README renders on the index;
3. the wheel and the sdist are opened: version, extras (no ``dev``), project URLs, licence,
   entry points; the wheel carries LICENSE, py.typed and every module, and no test file;
4. the wheel is installed into a fresh venv alone and with each extra ([vault], [aws], [azure],
   [gcp], [all]); in each: both entry point groups load, ``mlflow-secrets-auth --version`` and
   ``info`` run, importing (and loading the entry points) loads no SDK, the extra brings its
   store's SDK and no other store's, and site-packages is measured ([vault] under 150 MB).

It ends with ``dist: N passed, N failed`` (one per install) and exits non-zero on any failure.
Usage: check_dist.py [--jobs N] [--keep]
"""

from __future__ import annotations

import argparse
import configparser
import email.message
import email.parser
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from devenv import ROOT, child_env, duration, pyproject, run, tail, uv_path

DIST = ROOT / "dist"
PACKAGE = "mlflow_secrets_auth"
SOURCE = ROOT / "src" / PACKAGE
PROBE = Path(__file__).resolve().with_name("dist_probe.py")
#: Installed size limits (MB of site-packages) per extra; the issue's goal for the smallest store.
SIZE_LIMIT_MB = {"vault": 150}
#: What a test file looks like inside a distribution.
TEST_FILE = re.compile(r"(^|/)(tests?|testing_support)/|(^|/)conftest\.py$|(^|/)test_[^/]*\.py$")
#: Variables that would change what ``info`` shows or make a store reach out.
_CONFIG_PREFIXES = ("MLFLOW_", "VAULT_", "AWS_", "AZURE_", "GOOGLE_", "GCE_", "CLOUDSDK_")
_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:
        print(message, flush=True)


@dataclass
class Checks:
    """Named checks, each passed or failed with a reason; printed as one block."""

    title: str
    lines: list[str] = field(default_factory=list)
    failures: int = 0

    def check(self, ok: bool, what: str, why: str = "") -> bool:
        self.lines.append(
            f"  {'ok  ' if ok else 'FAIL'} {what}{'' if ok or not why else f': {why}'}"
        )
        self.failures += 0 if ok else 1
        return ok

    def note(self, text: str) -> None:
        self.lines.append(f"       {text}")

    def show(self) -> None:
        say("\n".join([self.title, *self.lines]))


# --- the metadata ------------------------------------------------------------------------------


def source_version() -> str:
    match = re.search(r'^__version__ = "([^"]+)"', (SOURCE / "__init__.py").read_text(), re.M)
    if match is None:
        raise SystemExit(f"no __version__ in {SOURCE / '__init__.py'}")
    return match.group(1)


def metadata_of(wheel: Path) -> tuple[email.message.Message, dict[str, list[str]], list[str]]:
    """The wheel's METADATA, its entry points by group, and its file names."""
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
        metadata = email.parser.BytesParser().parsebytes(archive.read(f"{info}/METADATA"))
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep names' case
        parser.read_string(archive.read(f"{info}/entry_points.txt").decode())
    groups = {section: sorted(parser[section]) for section in parser.sections()}
    return metadata, groups, names


def extra_requirements(metadata: email.message.Message) -> dict[str, set[str]]:
    """For each extra, the distributions it adds (self-references expanded), canonical names."""
    name = canonicalize_name(str(metadata["Name"]))
    extras = list(metadata.get_all("Provides-Extra") or [])
    direct: dict[str, set[Requirement]] = {extra: set() for extra in extras}
    for line in metadata.get_all("Requires-Dist") or []:
        requirement = Requirement(line)
        for extra in extras:
            marker = requirement.marker
            # Added by this extra: true with it, false without (unlike a python_version marker).
            if (
                marker is not None
                and marker.evaluate({"extra": extra})
                and not marker.evaluate({"extra": ""})
            ):
                direct[extra].add(requirement)

    def expand(extra: str, seen: frozenset[str] = frozenset()) -> set[str]:
        found: set[str] = set()
        for requirement in direct.get(extra, set()):
            if canonicalize_name(requirement.name) == name:
                for inner in requirement.extras - seen:
                    found |= expand(inner, seen | {extra})
            else:
                found.add(canonicalize_name(requirement.name))
        return found

    return {extra: expand(extra) for extra in extras}


def check_metadata(checks: Checks, wheel: Path, version: str) -> dict[str, Any]:
    metadata, groups, _ = metadata_of(wheel)
    project = pyproject()["project"]
    checks.check(metadata["Version"] == version, f"version {version}", str(metadata["Version"]))
    extras = set(metadata.get_all("Provides-Extra") or [])
    declared = set(project["optional-dependencies"])
    checks.check(extras == declared, f"extras {sorted(extras)}", f"pyproject declares {declared}")
    checks.check("dev" not in extras, "no `dev` extra published", "dev is an extra")
    urls = {
        u.split(",", 1)[0].strip(): u.split(",", 1)[1].strip()
        for u in metadata.get_all("Project-URL") or []
    }
    checks.check(urls == project["urls"], f"project URLs: {', '.join(urls)}", f"{urls}")
    checks.check(
        metadata["License-Expression"] == project["license"]
        and "LICENSE" in (metadata.get_all("License-File") or []),
        f"licence {metadata['License-Expression']} with License-File LICENSE",
        f"License-Expression={metadata['License-Expression']} "
        f"License-File={metadata.get_all('License-File')}",
    )
    expected = {group: sorted(entries) for group, entries in project["entry-points"].items()}
    expected["console_scripts"] = sorted(project["scripts"])
    checks.check(groups == expected, "entry points as in pyproject.toml", f"{groups}")
    return {"extras": extra_requirements(metadata), "groups": groups}


def check_wheel_files(checks: Checks, wheel: Path) -> None:
    _, _, names = metadata_of(wheel)
    checks.check(
        any(re.fullmatch(r"[^/]+\.dist-info/licenses/LICENSE", n) for n in names),
        "wheel carries LICENSE (in .dist-info/licenses/)",
        "missing",
    )
    checks.check(f"{PACKAGE}/py.typed" in names, "wheel carries py.typed", "missing")
    tests = [n for n in names if TEST_FILE.search(n)]
    checks.check(not tests, "wheel carries no test files", ", ".join(tests))
    modules = {str(p.relative_to(SOURCE.parent)) for p in SOURCE.rglob("*.py")}
    in_wheel = {n for n in names if n.endswith(".py")}
    checks.check(
        modules == in_wheel,
        f"wheel carries every module of src/{PACKAGE} ({len(modules)}) and nothing else",
        f"missing {sorted(modules - in_wheel)}, extra {sorted(in_wheel - modules)}",
    )


def check_sdist_files(checks: Checks, sdist: Path) -> None:
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
    needed = ["LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "PKG-INFO"]
    needed.append(f"src/{PACKAGE}/py.typed")
    missing = [name for name in needed if name not in names]
    checks.check(not missing, f"sdist carries {', '.join(needed)}", f"missing {missing}")
    tests = [n for n in names if TEST_FILE.search(n)]
    checks.check(not tests, "sdist carries no test files", ", ".join(tests))


# --- a fresh venv per extra --------------------------------------------------------------------


@dataclass
class Install:
    extra: str  # "" for the wheel alone
    checks: Checks
    install_seconds: float = 0.0
    size_mb: float | None = None

    @property
    def label(self) -> str:
        return f"[{self.extra}]" if self.extra else "(no extra)"


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3.*/site-packages"))


def size_mb(path: Path) -> float:
    if shutil.which("du"):
        out = subprocess.run(["du", "-sk", str(path)], capture_output=True, text=True, check=True)
        return int(out.stdout.split()[0]) / 1024
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1024 / 1024


def probe_env(home: Path) -> dict[str, str]:
    """A known environment: none of the caller's settings, the file store enabled (it needs no
    SDK, so every install can report a usable configuration) and MLflow told to use the plugin."""
    token = home / "token"
    token.write_text("not-a-real-token\n")
    env = child_env({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config")})
    env = {k: v for k, v in env.items() if not k.startswith(_CONFIG_PREFIXES)}
    env.update(
        {
            "MLFLOW_TRACKING_AUTH": "mlflow_secrets_auth",
            "MLFLOW_SECRETS_AUTH_ENABLE": "file",
            "MLFLOW_FILE_SECRET_PATH": str(token),
        }
    )
    return env


def check_install(
    extra: str, wheel: Path, version: str, facts: dict[str, Any], work: Path
) -> Install:
    label = f"[{extra}]" if extra else "(no extra)"
    result = Install(extra, Checks(f"Wheel {label} in a fresh venv"))
    checks = result.checks
    venv = work / (extra or "bare")
    home = work / f"home-{extra or 'bare'}"
    home.mkdir(parents=True)
    uv = uv_path()
    say(f"  {label}: installing into a fresh venv")
    made = run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], env=child_env())
    target = f"{wheel}[{extra}]" if extra else str(wheel)
    python = str(venv / "bin" / "python")
    # Bytecode compiled as pip would, so the size is what a pip user finds on disk.
    install = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python, target]
    step = made if not made.ok else run(install, env=child_env())
    if not step.ok:
        checks.check(False, f"uv pip install {label}", tail(step.output, 20))
        return result
    result.install_seconds = made.seconds + step.seconds
    checks.check(True, f"installed in {duration(result.install_seconds)}")

    extras: dict[str, set[str]] = facts["extras"]
    store_extras = sorted(e for e in extras if e != "all")
    expected = extras.get(extra, set()) if extra else set()
    every_sdk = set().union(*(extras[e] for e in store_extras))
    env = probe_env(home)

    probe = run([python, "-I", str(PROBE), *sorted(every_sdk)], env=env, cwd=home)
    if not checks.check(probe.ok, "the probe ran", tail(probe.output, 20)):
        return result
    report = json.loads(probe.output.strip().splitlines()[-1])
    checks.check(
        Path(report["module_file"]).is_relative_to(venv) and report["version"] == version,
        f"imports {PACKAGE} {version} from the venv",
        f"{report['version']} from {report['module_file']}",
    )
    checks.check(
        report["loaded_after_import"] == [] and report["loaded_after_entry_points"] == [],
        "importing it and loading its entry points loads no SDK (nor MLflow or requests)",
        f"after import: {report['loaded_after_import']}, "
        f"after entry points: {report['loaded_after_entry_points']}",
    )
    groups = facts["groups"]
    loaded = report["entry_points"]
    wanted = {g: groups[g] for g in loaded}
    checks.check(
        not report["errors"] and loaded == wanted,
        "entry points load: "
        + "; ".join(f"{g} ({len(names)})" for g, names in sorted(loaded.items())),
        "; ".join(report["errors"]) or f"{loaded} != {wanted}",
    )
    stores: dict[str, dict[str, Any]] = report["stores"]
    checks.check(
        sorted({s["extra"] for s in stores.values()}) == store_extras,
        f"each of the extras {store_extras} belongs to a store",
        f"stores name {sorted(str(s['extra']) for s in stores.values())}",
    )
    for name, store in sorted(stores.items()):
        should = extra in (store["extra"], "all")
        checks.check(
            store["sdk_found"] is should,
            f"{name}: SDK {store['sdk_module']} {'present' if should else 'absent'}",
            f"{'absent' if should else 'present'}",
        )
    dists: dict[str, str | None] = report["dists"]
    missing = sorted(d for d in expected if dists.get(d) is None)
    strays = sorted(d for d in every_sdk - expected if dists.get(d) is not None)
    pulled = ", ".join(f"{d} {dists[d]}" for d in sorted(expected)) or "none"
    checks.check(not missing, f"pulls in {pulled}", f"missing {missing}")
    checks.check(not strays, "no other store's SDK installed", f"also installed {strays}")

    script = str(venv / "bin" / "mlflow-secrets-auth")
    shown = run([script, "--version"], env=env, cwd=home)
    checks.check(
        shown.ok and version in shown.output,
        f"mlflow-secrets-auth --version: {shown.output.strip()}",
        tail(shown.output, 10),
    )
    info = run([script, "info"], env=env, cwd=home)
    checks.check(
        info.ok and info.output.startswith(f"mlflow-secrets-auth {version} "),
        f"mlflow-secrets-auth info: {(info.output.splitlines() or [''])[0]}",
        tail(info.output, 10),
    )
    info_json = run([script, "info", "--json"], env=env, cwd=home)
    if checks.check(info_json.ok, "mlflow-secrets-auth info --json", tail(info_json.output, 10)):
        document = json.loads(info_json.output)
        checks.check(
            document["entry_point"]["registered"] is True and document["ok"] is True,
            "info: entry point registered, the file store's configuration usable",
            f"entry point {document['entry_point']}, ok={document['ok']}",
        )
        said = {b["name"]: b["sdk_installed"] for b in document["backends"] if b["name"] in stores}
        found = {name: store["sdk_found"] for name, store in stores.items()}
        checks.check(said == found, "info agrees on which SDKs are installed", f"{said} != {found}")

    result.size_mb = size_mb(site_packages(venv))
    limit = SIZE_LIMIT_MB.get(extra)
    checks.check(
        limit is None or result.size_mb < limit,
        f"site-packages {result.size_mb:.0f} MB" + (f" (limit {limit} MB)" if limit else ""),
        "over the limit",
    )
    return result


# --- the whole run -----------------------------------------------------------------------------


def timed(what: str, action: Callable[[], bool]) -> tuple[bool, float]:
    started = time.monotonic()
    ok = action()
    seconds = time.monotonic() - started
    say(f"{what}: {'done' if ok else 'FAILED'} in {duration(seconds)}")
    return ok, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2, help="installs at a time (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the venvs (printed at the end)")
    options = parser.parse_args()
    started = time.monotonic()
    version = source_version()

    shutil.rmtree(DIST, ignore_errors=True)
    built = run([uv_path(), "build", "--out-dir", str(DIST), str(ROOT)], env=child_env())
    say(f"uv build: {'done' if built.ok else 'FAILED'} in {duration(built.seconds)}")
    if not built.ok:
        say(tail(built.output))
        say("dist: 0 passed, 1 failed")
        return 1
    wheels, sdists = sorted(DIST.glob("*.whl")), sorted(DIST.glob("*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        say(f"expected one wheel and one sdist in {DIST}, found {wheels + sdists}")
        return 1
    wheel, sdist = wheels[0], sdists[0]
    say(f"  {sdist.relative_to(ROOT)} ({sdist.stat().st_size // 1024} KB)")
    say(f"  {wheel.relative_to(ROOT)} ({wheel.stat().st_size // 1024} KB)")

    artefacts = Checks("Metadata and contents")
    twine = run([sys.executable, "-m", "twine", "check", "--strict", str(wheel), str(sdist)])
    artefacts.check(twine.ok, "twine check --strict (metadata, README renders)", tail(twine.output))
    facts = check_metadata(artefacts, wheel, version)
    check_wheel_files(artefacts, wheel)
    check_sdist_files(artefacts, sdist)
    artefacts.show()

    extras = ["", *sorted(facts["extras"], key=lambda e: (e == "all", e))]
    work = Path(tempfile.mkdtemp(prefix="check-dist-"))
    jobs = max(1, options.jobs)
    say(f"Installing the wheel {len(extras)} ways, {jobs} at a time, under {work}")
    try:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            installs = list(
                pool.map(lambda e: check_install(e, wheel, version, facts, work), extras)
            )
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    for install in installs:
        install.checks.show()

    say("\nInstalled size of site-packages per extra:")
    for install in installs:
        size = f"{install.size_mb:6.0f} MB" if install.size_mb is not None else "     n/a"
        say(f"  {install.label:12} {size}   installed in {duration(install.install_seconds)}")
    failed = sum(1 for i in installs if i.checks.failures) + (1 if artefacts.failures else 0)
    passed = len(installs) + 1 - failed
    say(f"make dist took {duration(time.monotonic() - started)}")
    if options.keep:
        say(f"venvs kept under {work}")
    say(f"dist: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
