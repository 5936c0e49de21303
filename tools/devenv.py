"""Shared by the release tools: where the project is, what it declares, and how to run a step.

The tools run from the development venv (``make venv``), whose ``uv`` builds and fills the extra
venvs: pip's download cache does not help where the package index sends no cache headers, and
uv's cache does, so a second venv costs seconds instead of minutes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

if sys.version_info >= (3, 11):
    import tomllib
else:  # the project supports 3.10, where tomli is a dependency
    import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"

#: Variables that would make a child Python import something other than what its venv holds.
_PYTHON_STEERING = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE", "VIRTUAL_ENV")


def pyproject() -> dict[str, Any]:
    with PYPROJECT.open("rb") as handle:
        document: dict[str, Any] = tomllib.load(handle)
    return document


def supported_versions() -> list[str]:
    """The ``3.X`` versions the package declares in its classifiers, oldest first."""
    found = []
    for classifier in pyproject()["project"].get("classifiers", []):
        match = re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", classifier)
        if match:
            found.append(match.group(1))
    return sorted(found, key=lambda v: tuple(int(p) for p in v.split(".")))


def uv_path() -> str:
    """The uv installed in this venv by ``make venv`` (or one on PATH)."""
    beside = Path(sys.executable).with_name("uv")
    if beside.exists():
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise SystemExit(
            f"uv is missing from {Path(sys.executable).parent}: run `make venv` (the dev "
            "dependency group in pyproject.toml installs it)"
        )
    return found


def child_env(
    extra: Mapping[str, str] | None = None, *, path_first: Path | None = None
) -> dict[str, str]:
    """This environment without what steers a child Python elsewhere; ``path_first`` leads PATH."""
    env = {k: v for k, v in os.environ.items() if k not in _PYTHON_STEERING}
    if path_first is not None:
        env["PATH"] = f"{path_first}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Step:
    """A finished command: its exit code, how long it took and what it printed."""

    returncode: int
    seconds: float
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def run(
    command: Sequence[str],
    *,
    log: TextIO | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    timeout: float = 1800,
) -> Step:
    """Run ``command``, recording its output in ``log`` under a header that names it."""
    if log is not None:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
    started = time.monotonic()
    try:
        done = subprocess.run(
            list(command),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
            check=False,
        )
        returncode, output = done.returncode, done.stdout
    except subprocess.TimeoutExpired as expired:
        partial = expired.stdout
        text = partial.decode(errors="replace") if isinstance(partial, bytes) else partial or ""
        returncode, output = -1, f"{text}\n[stopped after {timeout:.0f} s]\n"
    seconds = time.monotonic() - started
    if log is not None:
        log.write(output)
        log.write(f"[exit {returncode} after {seconds:.1f} s]\n")
        log.flush()
    return Step(returncode, seconds, output)


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s" if minutes else f"{seconds:.1f}s"
