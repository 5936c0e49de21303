"""`make demo` as a newcomer runs it: progress while the servers start, steps in the order they
happen, "(cached)" only where the plugin's counters say so, and a start-up limit a slow machine
can raise.

The demo is run as a subprocess, exactly as `make demo` runs it, with its own servers (about a
minute on a busy 2-core machine).
"""

from __future__ import annotations

import importlib.util
import io
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

from support.openbao import SKIP_PREFIX, openbao_unavailable_reason

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "examples" / "demo.py"
MLFLOW_LABEL = "starting MLflow (this takes up to a minute on a busy machine)"


def run_demo(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    reason = openbao_unavailable_reason()
    if reason is not None:
        pytest.skip(SKIP_PREFIX + reason)
    env = dict(os.environ)
    if env.get("PYTHONPATH"):  # keep a relative src/ meaning the same from the demo's cwd
        entries = env["PYTHONPATH"].split(os.pathsep)
        env["PYTHONPATH"] = os.pathsep.join(str(Path(e).resolve()) for e in entries if e)
    return subprocess.run(
        [sys.executable, str(DEMO), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_under_test", DEMO)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def positions(text: str, needles: list[str]) -> list[int]:
    found = []
    for needle in needles:
        assert text.count(needle) == 1, (needle, text[-4000:])
        found.append(text.index(needle))
    return found


@pytest.mark.timeout(900)
def test_demo_shows_progress_and_its_steps_in_order() -> None:
    done = run_demo()
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    out, err = done.stdout, done.stderr

    # Progress on stderr, one line per server, each ending with how long it took.
    assert re.search(r"^  starting OpenBao….* ready in \d+\.\d s$", err, re.MULTILINE), err
    mlflow_line = re.search(rf"^  {re.escape(MLFLOW_LABEL)}…(.*) ready in \d+\.\d s$", err, re.M)
    assert mlflow_line is not None, err
    assert re.fullmatch(r"( \d+ s…)*", mlflow_line.group(1)), mlflow_line.group(1)

    headers = [f"\n[{n}] " for n in range(1, 8)]
    assert positions(out, headers) == sorted(positions(out, headers))
    sections = dict(zip(range(1, 8), re.split(r"\n\[\d\] ", out)[1:], strict=True))

    # The training script's own process reads Vault once for all of its calls.
    assert sections[4].count("| INFO: Secret fetched successfully (provider=vault") == 1
    assert "registered model 'demo-model' version 1" in sections[4]

    # In this process: a read, then the cache, then a 401 replay after the rotation: in that
    # order, each said once, "(cached)" only for the call the counters show served from cache.
    calls = [
        "get_experiment_by_name('demo-experiment'): credential read from Vault (1 read)",
        "search_runs: credential from this process's cache, no Vault read (cached)",
        "start_run after the rotation: the server answered 401, the plugin dropped the rejected "
        "credential, read the new one from Vault (1 read) and replayed the request",
    ]
    assert positions(out, calls) == sorted(positions(out, calls))
    assert out.count("(cached)") == 1
    assert calls[0] in sections[5] and calls[1] in sections[5] and calls[2] in sections[6]
    # The plugin's own lines for the rotation come before the demo's summary of that call.
    assert sections[6].index("plugin: Dropped rejected credential") < sections[6].index(calls[2])

    # Stopping is reported after it happened, then the closing line.
    stop = positions(out, ["\n[7] Stopping both servers", "MLflow stopped in", "OpenBao stopped"])
    assert stop == sorted(stop)
    assert out.rstrip().endswith(
        "Done: every MLflow call was authenticated with the credential kept in Vault."
    )
    # The demo's passwords ("pw-…") and the OpenBao root token ("root-…") never appear.
    for marker in ("pw-", "root-"):
        assert marker not in out and marker not in err


@pytest.mark.timeout(300)
def test_a_start_limit_that_passes_says_how_to_wait_longer() -> None:
    done = run_demo("--mlflow-start-timeout", "0.01")
    assert done.returncode == 1, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert re.search(rf"^  {re.escape(MLFLOW_LABEL)}… failed after \d+\.\d s$", done.stderr, re.M)
    assert "mlflow did not become ready (GET /health) within 0 s" in done.stderr
    assert "DEMO_MLFLOW_START_TIMEOUT=600 make demo (now 0 s)" in done.stderr
    assert "[3] " not in done.stdout  # nothing ran against a server that never started
    assert done.stdout.rstrip().endswith("OpenBao stopped")


class _Stream(io.StringIO):
    """Records each write; a terminal or not, as asked."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty
        self.writes: list[str] = []
        self.ticked = threading.Event()

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> int:
        self.writes.append(text)
        if len(self.writes) > 1:  # the first write is the label, any later one a tick
            self.ticked.set()
        return super().write(text)


@pytest.mark.parametrize(
    ("tty", "tick", "end"),
    [
        (True, r"\r\x1b\[K  starting X… \d+ s", r"\r\x1b\[K  starting X… ready in \d+\.\d s\n"),
        (False, r" \d+ s…", r" ready in \d+\.\d s\n"),
    ],
)
def test_progress_ticks_in_place_on_a_terminal_and_appends_marks_elsewhere(
    tty: bool, tick: str, end: str
) -> None:
    stream = _Stream(tty)
    with load_demo().Progress("starting X", stream, interval=0.01):
        assert stream.ticked.wait(30)
    assert stream.writes[0] == "  starting X…"
    assert re.fullmatch(tick, stream.writes[1]), stream.writes[1]
    assert re.fullmatch(end, stream.writes[-1]), stream.writes[-1]


def test_progress_says_when_the_start_failed() -> None:
    stream = _Stream(False)
    with pytest.raises(RuntimeError), load_demo().Progress("starting Y", stream):
        raise RuntimeError("did not start")
    assert re.fullmatch(r"  starting Y…( \d+ s…)* failed after \d+\.\d s\n", stream.getvalue())
