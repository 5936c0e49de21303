"""Run the unit tests and the integration smoke on every supported Python found on this machine.

``make test-pythons`` runs this. The supported versions are the ``Programming Language :: Python
:: 3.X`` classifiers in pyproject.toml. For each one it looks for an interpreter (pyenv's
versions first, then ``python3.X`` on PATH), says which it found and which it skipped and why,
gives each its own venv (``.venv-3.X``, made by ``make venv`` and reused while pyproject.toml is
unchanged; ``.venv`` itself when it already is that version), and runs ``tests/unit`` and the
tests marked ``smoke`` (Vault, AWS and the file store through the real MLflow server, and the
CLI). A pytest that collects nothing (exit 5) is a failure. Each Python's output goes to
``build/test-pythons/3.X.log``; a failure prints its tail.

Usage: test_pythons.py [--jobs N] [3.X ...]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from devenv import ROOT, child_env, duration, run, supported_versions, tail

LOGS = ROOT / "build" / "test-pythons"
MAIN_VENV = ROOT / ".venv"
PROBE = "import sys, venv, ensurepip; print('%d.%d.%d' % sys.version_info[:3])"
#: The two pytest runs each Python gets; the smoke is chosen by the ``smoke`` marker.
SUITES = (
    ("unit", ["tests/unit"]),
    ("smoke", ["tests", "-m", "smoke"]),
)
_print_lock = threading.Lock()


def say(message: str) -> None:
    with _print_lock:
        print(message, flush=True)


@dataclass
class Interpreter:
    version: str  # "3.10"
    python: Path | None = None
    full_version: str = ""
    rejected: list[str] = field(default_factory=list)  # why other candidates did not do


def pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def candidates(version: str) -> list[Path]:
    """pyenv's installs of ``version`` (newest patch first), then ``python3.X`` on PATH."""
    found: list[Path] = []
    versions = pyenv_root() / "versions"
    if versions.is_dir():
        patches = [
            entry
            for entry in versions.iterdir()
            if re.fullmatch(rf"{re.escape(version)}\.\d+", entry.name)
        ]
        patches.sort(key=lambda entry: int(entry.name.rsplit(".", 1)[1]), reverse=True)
        found += [entry / "bin" / f"python{version}" for entry in patches]
    on_path = shutil.which(f"python{version}")
    if on_path is not None:
        found.append(Path(on_path))
    return found


def find(version: str) -> Interpreter:
    """The first candidate that runs, is ``version`` and can make a venv."""
    interpreter = Interpreter(version)
    for candidate in candidates(version):
        if not candidate.exists():
            interpreter.rejected.append(f"{candidate} does not exist")
            continue
        probe = run([str(candidate), "-c", PROBE], env=child_env(), timeout=60)
        reported = probe.output.strip().splitlines()[-1:] if probe.output.strip() else []
        if not probe.ok:
            first = probe.output.strip().splitlines()[:1] or ["no output"]
            interpreter.rejected.append(
                f"{candidate} did not run or lacks venv/ensurepip ({first[0]})"
            )
        elif not reported or not reported[0].startswith(f"{version}."):
            interpreter.rejected.append(f"{candidate} is Python {''.join(reported)}")
        else:
            interpreter.python, interpreter.full_version = candidate, reported[0]
            return interpreter
    if not interpreter.rejected:
        interpreter.rejected.append(
            f"not found: no python{version} on PATH and none under {pyenv_root() / 'versions'}"
        )
    return interpreter


def venv_version(venv: Path) -> str | None:
    python = venv / "bin" / "python"
    if not python.exists():
        return None
    probe = run([str(python), "-c", PROBE], env=child_env(), timeout=60)
    return probe.output.strip().splitlines()[-1] if probe.ok and probe.output.strip() else None


@dataclass
class Outcome:
    interpreter: Interpreter
    venv: str = ""
    venv_note: str = ""
    results: list[str] = field(default_factory=list)
    seconds: float = 0.0
    failed: str = ""  # the step that failed, empty when all passed


def summary_line(output: str) -> str:
    """pytest's closing line ("4 passed in 19.8s"), or the last line when there is none."""
    lines = [line.strip("= ") for line in output.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        if re.search(r"\b(passed|failed|errors?|no tests ran|deselected)\b.* in [\d.]+s", line):
            return line
    return lines[-1] if lines else "no output"


def test_one(interpreter: Interpreter) -> Outcome:
    assert interpreter.python is not None
    version = interpreter.version
    outcome = Outcome(interpreter)
    started = time.monotonic()
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"{version}.log"
    with log_path.open("w") as log:
        # .venv is reused when it already is this version: make keeps it current.
        if venv_version(MAIN_VENV) == interpreter.full_version:
            venv, outcome.venv_note = MAIN_VENV, "reused (make venv)"
        else:
            venv = ROOT / f".venv-{version}"
            have = venv_version(venv)
            if have is not None and have != interpreter.full_version:
                say(f"[{version}] {venv.name} is Python {have}: making it anew")
                shutil.rmtree(venv)
            fresh = not (venv / ".installed").exists()
            say(f"[{version}] {venv.name}: {'building' if fresh else 'checking'} (make venv)")
            step = run(
                [
                    "make",
                    "--no-print-directory",
                    "venv",
                    f"PYTHON={interpreter.python}",
                    f"VENV={venv.name}",
                ],
                log=log,
                env=child_env(),
            )
            if not step.ok:
                outcome.failed = "venv"
                say(f"[{version}] make venv failed; the tail of {log_path}:\n{tail(step.output)}")
                outcome.seconds = time.monotonic() - started
                return outcome
            built = "made in" if fresh or step.seconds > 5 else "reused, checked in"
            outcome.venv_note = f"{built} {duration(step.seconds)}"
        outcome.venv = venv.name
        say(f"[{version}] venv {venv.name}: {outcome.venv_note}")
        bin_dir = venv / "bin"
        for name, args in SUITES:
            step = run(
                [str(bin_dir / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                log=log,
                env=child_env(path_first=bin_dir),
            )
            line = summary_line(step.output)
            if step.returncode == 5:
                line = f"collected no tests (pytest exit 5, a failure): {line}"
            outcome.results.append(f"{name}: {line}")
            say(f"[{version}] {name}: {line}")
            if not step.ok:
                outcome.failed = name
                say(f"[{version}] {name} FAILED; the tail of {log_path}:\n{tail(step.output)}")
                break
    outcome.seconds = time.monotonic() - started
    return outcome


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("versions", nargs="*", help="only these versions (default: all supported)")
    parser.add_argument("--jobs", type=int, default=1, help="Pythons run at a time (default 1)")
    options = parser.parse_args()

    supported = supported_versions()
    unknown = [v for v in options.versions if v not in supported]
    if unknown:
        print(f"not a supported version: {' '.join(unknown)} (supported: {' '.join(supported)})")
        return 2
    print(f"Supported Pythons (pyproject.toml classifiers): {' '.join(supported)}")
    wanted, skipped = [], []
    for version in supported:
        if options.versions and version not in options.versions:
            skipped.append(
                f"{version}: skipped: not asked for (PYTHONS={' '.join(options.versions)})"
            )
            continue
        interpreter = find(version)
        if interpreter.python is None:
            skipped.append(f"{version}: skipped: {'; '.join(interpreter.rejected)}")
            continue
        print(f"  {version}: found {interpreter.python} (Python {interpreter.full_version})")
        for reason in interpreter.rejected:
            print(f"        passed over {reason}")
        wanted.append(interpreter)
    for line in skipped:
        print(f"  {line}")
    if not wanted:
        print("no supported Python to test: install one (e.g. `pyenv install 3.12`)")
        print(f"pythons: 0 passed, 0 failed, {len(skipped)} skipped")
        return 1

    jobs = max(1, min(options.jobs, len(wanted)))
    print(f"Running {len(wanted)} Python(s), {jobs} at a time; logs in {LOGS.relative_to(ROOT)}/")
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(pool.map(test_one, wanted))
    total = time.monotonic() - started

    print("\nResults:")
    for outcome in outcomes:
        interp = outcome.interpreter
        state = f"FAILED at {outcome.failed}" if outcome.failed else "ok"
        print(f"  Python {interp.full_version}: {state} in {duration(outcome.seconds)}")
        print(f"      venv {outcome.venv or '-'}: {outcome.venv_note or '-'}")
        for result in outcome.results:
            print(f"      {result}")
    for line in skipped:
        print(f"  {line}")
    failed = sum(1 for outcome in outcomes if outcome.failed)
    print(f"Total {duration(total)} for {len(outcomes)} Python(s), {jobs} at a time")
    print(f"pythons: {len(outcomes) - failed} passed, {failed} failed, {len(skipped)} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
