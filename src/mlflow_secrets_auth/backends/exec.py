"""The ``exec`` store: any command that prints the secret becomes a store (SPEC §3).

This is how 1Password (``op read …``), Doppler, ``gcloud``, ``az``, the Vault CLI or an in-house
tool are used without an SDK, in the manner of kubectl's exec credential plugins and botocore's
``credential_process``.

The command line is split as a POSIX shell would (``shlex``) but never given to a shell, so
``$HOME``, ``;`` or ``|`` in it are plain characters. The command runs in a session of its own
with no standard input, bounded by ``MLFLOW_SECRETS_TIMEOUT_SEC``: when the bound passes, its
whole process group is killed. Its standard output is the secret and is never echoed anywhere;
its last line of standard error is the one thing of its output an error may quote. The command
line itself may carry an argument a user would rather not see in logs, so reprs and logs name
only the program and the number of arguments.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import select
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import IO, ClassVar

from .. import values
from ..errors import BackendError, ConfigurationError, IncompleteConfigurationError
from ..log import get_logger
from .base import CommonSettings, FetchedSecret, Payload, SecretStore, StoreSettings, Variable

logger = get_logger(__name__)

NAME = "exec"
COMMAND_VARIABLE = "MLFLOW_EXEC_COMMAND"
#: A credential is small: more output than this is a wrong command (and is not kept in memory).
MAX_OUTPUT_BYTES = 1024 * 1024
#: Standard error is kept only for its last line.
_STDERR_TAIL_BYTES = 8192
_MAX_STDERR_LINE = 200
#: After a kill, how long to wait for the pipes to close before giving up on them.
_KILL_GRACE_SEC = 1.0
_CHUNK = 65536
_EXEC_CREDENTIAL_GROUP = "client.authentication.k8s.io/"
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Per process, so the identity of a command line tells equal from different without letting a
# log reader test guesses of an argument offline.
_IDENTITY_KEY = os.urandom(16)


@dataclass(frozen=True, kw_only=True, repr=False)
class ExecSettings(StoreSettings):
    """The command, already split: a malformed command line is a configuration error at load,
    not a failure at the first request."""

    argv: tuple[str, ...]

    @property
    def program(self) -> str:
        """The program's file name, without its directory: what errors and logs name."""
        return os.path.basename(self.argv[0]) or self.argv[0]

    @property
    def identity(self) -> str:
        material = "\0".join(self.argv).encode()
        digest = hmac.new(_IDENTITY_KEY, material, hashlib.sha256).hexdigest()[:16]
        return f"exec:{self.program}#{digest}"

    def describe(self) -> str:
        count = len(self.argv) - 1
        return f"the command {self.program} with {count} argument{'' if count == 1 else 's'}"

    def __repr__(self) -> str:
        return (
            f"ExecSettings({self.describe()}, auth_mode={self.auth_mode!r}, "
            f"ttl_sec={self.ttl_sec!r}, timeout_sec={self.timeout_sec!r})"
        )


class ExecStore(SecretStore[ExecSettings]):
    """Runs the command once per fetch; the cache decides how often that is."""

    name: ClassVar[str] = NAME
    prefix: ClassVar[str] = "MLFLOW_EXEC"
    variables: ClassVar[tuple[Variable, ...]] = (
        Variable(
            COMMAND_VARIABLE,
            "command",
            "A command line (split like a POSIX shell, never run by one) whose standard output "
            "is the secret: a token, JSON (optionally with expires_at), or a Kubernetes "
            "ExecCredential.",
        ),
    )

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> ExecSettings:
        raw = values.text(env, COMMAND_VARIABLE)
        if raw is None:
            raise IncompleteConfigurationError(NAME, [COMMAND_VARIABLE])
        try:
            argv = tuple(shlex.split(raw, posix=True))
        except ValueError as error:
            # shlex says "No closing quotation" / "No escaped character": never the text.
            raise ConfigurationError(
                f"{COMMAND_VARIABLE} is not a valid command line ({error}): balance its quotes "
                "and escape a trailing backslash",
                variable=COMMAND_VARIABLE,
            ) from None
        if not argv or not argv[0]:
            raise ConfigurationError(
                f"{COMMAND_VARIABLE} names no program: give a command line such as "
                "'op read op://vault/mlflow/credential'",
                variable=COMMAND_VARIABLE,
            )
        return ExecSettings(argv=argv, **common.kwargs())

    def fetch(self) -> FetchedSecret:
        s = self.settings
        logger.debug(
            "Running the exec command (program=%s, arguments=%d, timeout=%gs)",
            s.program,
            len(s.argv) - 1,
            s.timeout_sec,
        )
        started = time.monotonic()
        returncode, stdout = self._run()
        payload, expires_at, shape = self._interpret(stdout)
        logger.debug(
            "Exec command finished (program=%s, exit_code=%d, seconds=%.3f, format=%s, "
            "expires_in=%s)",
            s.program,
            returncode,
            time.monotonic() - started,
            shape,
            "none" if expires_at is None else f"{expires_at - time.time():.0f}s",
        )
        return FetchedSecret(payload, location=s.describe(), expires_at=expires_at)

    # -- running ---------------------------------------------------------------------------------

    def _run(self) -> tuple[int, bytes]:
        """Run the command within the bound: its exit code and standard output."""
        s = self.settings
        deadline = time.monotonic() + s.timeout_sec
        try:
            process = subprocess.Popen(
                s.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                bufsize=0,
                start_new_session=True,  # its own process group, so a kill reaches its children
            )
        except OSError as error:
            raise self._start_error(error) from None
        assert process.stdout is not None and process.stderr is not None
        stdout = _Drain(process.stdout, MAX_OUTPUT_BYTES + 1, tail=False)
        stderr = _Drain(process.stderr, _STDERR_TAIL_BYTES, tail=True)
        try:
            # The pipes first: a thread join wakes at once, where Popen.wait(timeout) polls.
            stdout.join(_remaining(deadline))
            stderr.join(_remaining(deadline))
            held_open = stdout.running or stderr.running
            exited = process.poll() if held_open else _wait(process, _remaining(deadline))
        except subprocess.TimeoutExpired:  # it closed its output but kept running
            exited, held_open = None, True
        except BaseException:  # KeyboardInterrupt while waiting: leave nothing running
            _kill(process, (stdout, stderr))
            raise
        if held_open or exited is None:
            # Still running: kill its group. Exited, but a process it started holds its output
            # open: kill what is left of the group; one that left the group is beyond reach,
            # so its pipes are not waited for (their readers end when it does).
            _kill(process, (stdout, stderr) if exited is None else ())
            raise self._timeout(exited)
        returncode = exited
        if returncode != 0:
            raise self._exit_error(returncode, stderr.last_line())
        if stdout.total > MAX_OUTPUT_BYTES:
            raise BackendError(
                NAME,
                "read",
                f"the command {s.program} printed more than {MAX_OUTPUT_BYTES // 1024} KiB: "
                "not a credential",
                f"that {COMMAND_VARIABLE} prints only the secret",
            )
        return returncode, bytes(stdout.data)

    def _start_error(self, error: OSError) -> BackendError:
        program = self.settings.program
        argv0 = self.settings.argv[0]
        if isinstance(error, FileNotFoundError):
            where = "" if os.sep in argv0 else " on PATH"
            return BackendError(
                NAME,
                "connect",
                f"the program {program} named in {COMMAND_VARIABLE} was not found{where}",
                f"that it is installed, or give its full path in {COMMAND_VARIABLE}",
            )
        if isinstance(error, PermissionError):
            return BackendError(
                NAME,
                "connect",
                f"the program {program} named in {COMMAND_VARIABLE} is not executable",
                f"its mode (chmod +x) or the program {COMMAND_VARIABLE} names",
            )
        return BackendError(
            NAME,
            "connect",
            f"the program {program} named in {COMMAND_VARIABLE} could not be started "
            f"({error.strerror or type(error).__name__})",
            f"{COMMAND_VARIABLE}; a script needs a #! line to be run directly",
        )

    def _timeout(self, exited: int | None) -> BackendError:
        s = self.settings
        if exited is None:
            detail = (
                f"the command {s.program} did not finish within {s.timeout_sec:g} s "
                "(MLFLOW_SECRETS_TIMEOUT_SEC) and was killed"
            )
        else:
            detail = (
                f"the command {s.program} exited with code {exited} but a process it started "
                f"kept its output open past {s.timeout_sec:g} s (MLFLOW_SECRETS_TIMEOUT_SEC)"
            )
        return BackendError(
            NAME,
            "connect",
            detail,
            "that the command does not wait for input (it gets no standard input, so a sign-in "
            "prompt hangs: sign in beforehand) and does not leave a background process holding "
            "its output; or raise MLFLOW_SECRETS_TIMEOUT_SEC",
        )

    def _exit_error(self, returncode: int, last_line: str) -> BackendError:
        program = self.settings.program
        if returncode < 0:
            try:
                how = f"was killed by signal {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with code {returncode}"
        said = f"; its last line of standard error: {last_line}" if last_line else ""
        return BackendError(
            NAME,
            "read",
            f"the command {program} {how}{said}",
            f"the command in {COMMAND_VARIABLE}: run it in a shell as the same user to see why "
            "it fails (for a CLI, whether it is signed in)",
        )

    # -- output ----------------------------------------------------------------------------------

    def _interpret(self, stdout: bytes) -> tuple[Payload, float | None, str]:
        """The payload, its expiry, and the name of the format (for the DEBUG log)."""
        program = self.settings.program
        try:
            text = stdout.decode("utf-8-sig").strip()
        except UnicodeDecodeError:
            raise BackendError(
                NAME,
                "parse",
                f"the output of {program} is not UTF-8 text",
                "that the command prints the secret as UTF-8 text or JSON",
            ) from None
        if not text:
            raise BackendError(
                NAME,
                "read",
                f"the command {program} succeeded but printed nothing on standard output",
                f"that {COMMAND_VARIABLE} prints the secret (a token, or JSON) on standard output",
            )
        if not text.startswith("{"):
            return text, None, "plain"
        try:
            data = json.loads(text)
        except ValueError:
            return text, None, "plain"  # the plugin's parser says what is wrong with it
        if not isinstance(data, dict):
            return text, None, "plain"
        if data.get("kind") == "ExecCredential":
            return self._exec_credential(data)
        payload = {k: v for k, v in data.items() if k != "expires_at"}
        if data.get("expires_at") is None:
            return payload, None, "json"
        return payload, self._expiry(data["expires_at"], "expires_at"), "json with expires_at"

    def _exec_credential(self, data: dict[str, object]) -> tuple[Payload, float | None, str]:
        """A Kubernetes client.authentication.k8s.io ExecCredential: its status.token, which
        expires at status.expirationTimestamp when that is given."""
        program = self.settings.program
        api_version = data.get("apiVersion")
        if not (isinstance(api_version, str) and api_version.startswith(_EXEC_CREDENTIAL_GROUP)):
            raise BackendError(
                NAME,
                "parse",
                f"the ExecCredential printed by {program} has no apiVersion in "
                f"{_EXEC_CREDENTIAL_GROUP}",
                f"that it prints apiVersion {_EXEC_CREDENTIAL_GROUP}v1",
            )
        status = data.get("status")
        token = status.get("token") if isinstance(status, dict) else None
        if not isinstance(token, str) or not token.strip():
            raise BackendError(
                NAME,
                "parse",
                f"the ExecCredential printed by {program} has no status.token (a client "
                "certificate cannot be sent as an MLflow credential)",
                "that the command prints an ExecCredential with status.token",
            )
        assert isinstance(status, dict)
        raw_expiry = status.get("expirationTimestamp")
        expires_at = (
            None if raw_expiry is None else self._expiry(raw_expiry, "status.expirationTimestamp")
        )
        return {"token": token}, expires_at, "ExecCredential"

    def _expiry(self, raw: object, field: str) -> float:
        program = self.settings.program
        try:
            if not isinstance(raw, str):
                raise ValueError
            expires_at = rfc3339_epoch(raw)
        except ValueError:
            raise BackendError(
                NAME,
                "parse",
                f"the {field} printed by {program} is not an RFC 3339 time",
                f"that {field} has the form 2030-01-31T12:00:00Z (a time zone is required)",
            ) from None
        now = time.time()
        if expires_at <= now:
            when = datetime.fromtimestamp(expires_at, tz=timezone.utc)
            raise BackendError(
                NAME,
                "read",
                f"the command {program} printed a credential that expired at "
                f"{when.isoformat(timespec='seconds')} ({now - expires_at:.0f} s ago)",
                "that the command renews the credential it prints, and this machine's clock",
            )
        return expires_at


def rfc3339_epoch(text: str) -> float:
    """Epoch seconds of an RFC 3339 time (``Z`` or an offset required; any fraction digits).

    Written out because ``datetime.fromisoformat`` on Python 3.10 rejects ``Z`` and Go's
    nanosecond fractions, which Kubernetes tools print.
    """
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError("not an RFC 3339 time")
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    fraction = (match.group(7) or ".")[1:]
    zone = match.group(8)
    if zone in ("Z", "z"):
        offset = timedelta(0)
    else:
        sign = -1 if zone[0] == "-" else 1
        offset = sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
    try:
        moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError:  # an impossible date or time, such as February 30th
        raise ValueError("not an RFC 3339 time") from None
    return moment.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)


def _wait(process: subprocess.Popen[bytes], timeout: float) -> int:
    """``process.wait(timeout)`` without its polling: Popen sleeps 1, 2, 4… ms between checks,
    which for a quick command costs more than the command. On Linux a pidfd wakes us the moment
    the process exits (without reaping it, so its pid cannot be reused before we are done);
    elsewhere, or if pidfds are unavailable, Popen's own wait."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is not None and hasattr(select, "poll"):
        try:
            fd = pidfd_open(process.pid)
        except OSError:
            pass  # an old kernel or a sandbox without pidfds
        else:
            try:
                poller = select.poll()
                poller.register(fd, select.POLLIN)
                if not poller.poll(timeout * 1000):
                    raise subprocess.TimeoutExpired(process.args, timeout)
            finally:
                os.close(fd)
    return process.wait(timeout)


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


class _Drain:
    """Reads one pipe to its end in a thread, keeping at most ``keep`` bytes (the first ones, or
    with ``tail`` the last ones): a chatty or runaway command cannot fill memory or block on a
    full pipe."""

    def __init__(self, pipe: IO[bytes], keep: int, *, tail: bool) -> None:
        self.data = bytearray()
        self.total = 0
        self._pipe, self._keep, self._tail = pipe, keep, tail
        self._thread = threading.Thread(target=self._run, name="mlflow-secrets-exec", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while chunk := self._pipe.read(_CHUNK):
                self.total += len(chunk)
                if self._tail:
                    self.data += chunk
                    del self.data[: max(0, len(self.data) - self._keep)]
                elif len(self.data) < self._keep:
                    self.data += chunk[: self._keep - len(self.data)]
        except (OSError, ValueError):
            pass  # the pipe was closed under us: what was read is all there is
        finally:
            with contextlib.suppress(OSError):
                self._pipe.close()

    def last_line(self) -> str:
        """The last non-blank line, without control characters, bounded in length."""
        text = self.data.decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if not lines:
            return ""
        line = _CONTROL.sub(" ", lines[-1])
        return line if len(line) <= _MAX_STDERR_LINE else line[: _MAX_STDERR_LINE - 1] + "…"


def _kill(process: subprocess.Popen[bytes], drains: tuple[_Drain, ...]) -> None:
    """Kill the command and everything in its process group, reap it, and let its pipes'
    readers finish (briefly: the pipes close as soon as the group is dead)."""
    if hasattr(os, "killpg"):
        with contextlib.suppress(OSError):
            os.killpg(process.pid, signal.SIGKILL)  # the group's id is the command's pid
    with contextlib.suppress(OSError):
        process.kill()
    deadline = time.monotonic() + _KILL_GRACE_SEC
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=_KILL_GRACE_SEC)
    for drain in drains:
        drain.join(_remaining(deadline))
