"""Loopback ports, and the lifecycle of the server processes the test fixtures bind to them.

Ports are found by letting the kernel pick one (bind to port 0), so parallel runs and leftover
servers do not collide. There is an unavoidable window between closing the probe socket and the
server binding the port; the server classes retry with a new port when that race is lost
(`ServerStartError.port_in_use`).

Servers run in their own process group (session) so that stopping one also stops the workers it
spawned (`mlflow server` runs uvicorn as a child process), and an `atexit` hook stops any server
a crashed test run did not stop itself.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import requests

LOOPBACK = "127.0.0.1"
_PORT_IN_USE_MARKERS = ("address already in use", "errno 98", "eaddrinuse")


def _is_free(port: int, host: str = LOOPBACK) -> bool:
    """True when `port` can be bound on `host` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on `host` that was free a moment ago (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def free_port_pair(host: str = LOOPBACK, attempts: int = 50) -> int:
    """Return a port P such that P and P+1 are both free.

    OpenBao's dev server binds its cluster listener on the API port + 1, so it needs two
    adjacent free ports.
    """
    for _ in range(attempts):
        port = free_port(host)
        if port < 65535 and _is_free(port + 1, host):
            return port
    raise RuntimeError(f"no two adjacent free TCP ports found on {host} after {attempts} tries")


class ServerStartError(RuntimeError):
    """A server process did not become ready; the message carries its (redacted) stderr tail."""

    def __init__(self, message: str, *, port_in_use: bool = False) -> None:
        super().__init__(message)
        self.port_in_use = port_in_use


_LIVE: set[ServerProcess] = set()
_LIVE_LOCK = threading.Lock()


def _stop_all_live() -> None:
    """Last-resort cleanup at interpreter exit for servers no fixture finalizer stopped."""
    with _LIVE_LOCK:
        live = list(_LIVE)
    for proc in live:
        proc.stop(timeout=5)


atexit.register(_stop_all_live)


class ServerProcess:
    """One server process in its own process group, with stdout/stderr captured to files.

    `secrets` are strings (tokens, passwords) that are replaced by `***` in every log excerpt
    this class hands out, so failure messages never leak them.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        name: str,
        env: Mapping[str, str],
        cwd: Path,
        log_dir: Path,
        secrets: Iterable[str] = (),
    ) -> None:
        self.argv = list(argv)
        self.name = name
        self.env = dict(env)
        self.cwd = cwd
        self.stdout_path = log_dir / f"{name}.stdout.log"
        self.stderr_path = log_dir / f"{name}.stderr.log"
        self._secrets = [s for s in secrets if s]
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = False

    @property
    def pid(self) -> int | None:
        """The server's pid (also its process-group id), or None before `start()`."""
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Spawn the server in a new session so the whole group can be signalled at once."""
        with (
            self.stdout_path.open("wb") as out,
            self.stderr_path.open("wb") as err,
        ):
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        with _LIVE_LOCK:
            _LIVE.add(self)

    def running(self) -> bool:
        """True while the main server process has not exited."""
        return self._proc is not None and self._proc.poll() is None

    def redact(self, text: str) -> str:
        """Replace every known secret in `text` with `***`."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _tail(self, path: Path, lines: int) -> str:
        try:
            data = path.read_bytes()
        except OSError:
            return ""
        text = data.decode("utf-8", "replace")
        return self.redact("\n".join(text.splitlines()[-lines:]))

    def stderr_tail(self, lines: int = 40) -> str:
        """Last `lines` lines of the server's stderr, with secrets redacted."""
        return self._tail(self.stderr_path, lines)

    def stdout_tail(self, lines: int = 40) -> str:
        """Last `lines` lines of the server's stdout, with secrets redacted."""
        return self._tail(self.stdout_path, lines)

    def wait_ready(self, check: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Poll `check()` until it returns True; raise `ServerStartError` on exit or timeout.

        `check` should swallow connection errors and return False while the server is coming up.
        """
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            if not self.running():
                code = self._proc.returncode if self._proc else None
                self._fail(f"{self.name} exited with code {code} before {what}")
            if check():
                return
            if time.monotonic() >= deadline:
                self._fail(f"{self.name} did not become ready ({what}) within {timeout:.0f} s")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _fail(self, message: str) -> None:
        stderr = self.stderr_tail()
        stdout = self.stdout_tail(15)
        port_in_use = any(m in (stderr + stdout).lower() for m in _PORT_IN_USE_MARKERS)
        self.stop()
        raise ServerStartError(
            f"{message}\n--- stderr (tail) ---\n{stderr}\n--- stdout (tail) ---\n{stdout}",
            port_in_use=port_in_use,
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the whole process group: SIGTERM, then SIGKILL; reap the main process.

        Idempotent and safe to call from finalizers after a failed start.
        """
        proc = self._proc
        if proc is None or self._stopped:
            return
        self._stopped = True  # never signal the group id again: the pid may be reused
        pgid = proc.pid  # start_new_session=True makes the child its own group leader
        self._signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(pgid, signal.SIGKILL)
            proc.wait(timeout=timeout)
        # Workers may outlive the main process briefly; make sure none keep the port.
        deadline = time.monotonic() + timeout
        while self._group_exists(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self._group_exists(pgid):
            self._signal_group(pgid, signal.SIGKILL)
        with _LIVE_LOCK:
            _LIVE.discard(self)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)

    @staticmethod
    def _group_exists(pgid: int) -> bool:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True


class StartStop:
    """``with Server() as s:`` for anything with ``start() -> self`` and ``stop()``."""

    def start(self: _S) -> _S:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_S = TypeVar("_S", bound=StartStop)


class ManagedServer(StartStop):
    """A server binary this suite runs: pick a port, spawn, wait until healthy, clean up.

    Subclasses set ``port``/``startup_timeout``, create ``_tmp`` before ``_launch`` and provide
    ``_spawn`` (the process), ``_healthy`` (one readiness probe) and ``_pick_port``.
    """

    health_what = "readiness"
    port: int
    startup_timeout: float
    _tmp: Path | None
    _proc: ServerProcess | None
    _http: requests.Session

    def _pick_port(self) -> int:
        return free_port()

    def _spawn(self) -> ServerProcess:
        raise NotImplementedError

    def _healthy(self) -> bool:
        raise NotImplementedError

    def _launch(self, attempts: int) -> None:
        """Spawn until healthy; a port taken between picking and binding is retried."""
        for attempt in range(1, attempts + 1):
            self.port = self._pick_port()
            self._proc = self._spawn()
            try:
                self._proc.wait_ready(
                    self._healthy, timeout=self.startup_timeout, what=self.health_what
                )
            except ServerStartError as exc:
                if exc.port_in_use and attempt < attempts:
                    continue
                self.stop()
                raise
            return

    def stop(self) -> None:
        """Stop the process (its whole group) and delete its files. Idempotent."""
        if self._proc is not None:
            self._proc.stop()
        self._http.close()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @property
    def pid(self) -> int | None:
        """Pid of the server process (also its process group), None before `start()`."""
        return self._proc.pid if self._proc else None

    def stderr_tail(self, lines: int = 40) -> str:
        """The server's recent stderr (secrets redacted), for debugging a failing test."""
        return self._proc.stderr_tail(lines) if self._proc else ""
