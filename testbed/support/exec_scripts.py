"""Small commands for the exec store: Python scripts run by this interpreter, and a check that
a process is really gone."""

from __future__ import annotations

import os
import shlex
import sys
import textwrap
import time
from pathlib import Path


def script_command(folder: Path, name: str, body: str, *, fast_start: bool = False) -> str:
    """Write `body` (dedented) as `<folder>/<name>.py`; the command line that runs it.

    `fast_start` runs it with `-S` (no site-packages: standard library only), which cuts the
    interpreter's start-up to a few milliseconds, for scripts whose timing a test observes.
    """
    path = folder / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    flags = ["-S"] if fast_start else []
    return shlex.join([sys.executable, *flags, str(path)])


def program_name() -> str:
    """What the exec store calls the program of a `script_command` line."""
    return os.path.basename(sys.executable)


def running(pid: int) -> bool:
    """True while `pid` is a live process (a zombie waiting to be reaped counts as gone)."""
    if Path("/proc/self/stat").exists():  # Linux: tell a zombie from a running process
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, within: float = 10.0) -> bool:
    """Whether `pid` is gone, polling up to `within` seconds (signals are delivered
    asynchronously; this bounds the wait, it does not measure anything)."""
    deadline = time.monotonic() + within
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def read_pid(path: Path, within: float = 10.0) -> int:
    """The pid a script wrote to `path` (waiting for the script to have written it)."""
    deadline = time.monotonic() + within
    while True:
        text = path.read_text().strip() if path.exists() else ""
        if text:
            return int(text)
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} was never written")
        time.sleep(0.02)
