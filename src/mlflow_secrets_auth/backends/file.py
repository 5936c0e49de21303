"""The ``file`` store: a secret that something else keeps in a file (SPEC §3).

This is how fleets scale: an operator (a Kubernetes Secret volume, External Secrets, the Secrets
Store CSI driver, a Vault/OpenBao Agent sink) talks to the real store once per node or pod, and
every process only reads a file. No SDK, no network.

The file is re-read only when it changed: each fetch (at most every ``MLFLOW_FILE_TTL_SEC``, and
after a 401) costs one ``stat`` of the path. ``stat`` follows symbolic links, so it describes the
file the path resolves to now: Kubernetes' atomic swap of its ``..data`` link to a new timestamped
directory gives another inode even though the path itself never changes.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import ClassVar

from .. import values
from ..errors import BackendError, ConfigurationError, IncompleteConfigurationError
from ..log import get_logger
from .base import Advice, CommonSettings, FetchedSecret, SecretStore, StoreSettings, Variable

logger = get_logger(__name__)

NAME = "file"
PATH_VARIABLE = "MLFLOW_FILE_SECRET_PATH"
#: A secret is small (a Kubernetes Secret is at most 1 MiB): a bigger file is a wrong path, and
#: reading it whole would cost memory for nothing.
MAX_BYTES = 1024 * 1024
#: A file changed this recently may change again within the same timestamp tick without its
#: ``stat`` changing; such a file is read again at the next fetch (and compared by content).
RACY_WINDOW_NS = 100_000_000
_LISTED_ENTRIES = 10

_PERMISSION_FIX = (
    "that the user running MLflow can read the file: chmod 600 and chown it to that user; in "
    "Kubernetes set the pod's securityContext (runAsUser / fsGroup) and the secret volume's "
    "defaultMode"
)


@dataclass(frozen=True, kw_only=True)
class FileSettings(StoreSettings):
    """Where the secret file is: an absolute path, so the identity does not depend on the
    working directory of whoever reads it."""

    secret_path: str

    @property
    def identity(self) -> str:
        return f"file:{self.secret_path}"

    def describe(self) -> str:
        return f"the file {self.secret_path}"


#: The file the path resolves to (device, inode) and what changes with its content (size,
#: mtime, ctime); any change means "read it again". (device, inode) identify the resolved file
#: fully, so comparing the resolved path as well would cost a ``realpath`` and tell nothing more.
Signature = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class _Read:
    """The last successful read: what it returned and the ``stat`` it was valid for."""

    signature: Signature
    fetched: FetchedSecret
    racy: bool


def _signature(st: os.stat_result) -> Signature:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class FileStore(SecretStore[FileSettings]):
    """Reads one file and keeps its content until the file changes.

    The last read is one immutable record swapped in a single assignment, so concurrent fetches
    (two auth modes of one file) need no lock, and a forked child inherits no held lock.
    """

    name: ClassVar[str] = NAME
    prefix: ClassVar[str] = "MLFLOW_FILE"
    default_ttl_sec: ClassVar[float] = 30.0
    variables: ClassVar[tuple[Variable, ...]] = (
        Variable(
            PATH_VARIABLE,
            "secret_path",
            "A file holding the secret (JSON or a plain token): a Kubernetes Secret volume, a "
            "CSI mount, a Vault Agent sink. Read again when it changes.",
        ),
    )

    def __init__(self, settings: FileSettings) -> None:
        super().__init__(settings)
        self._last: _Read | None = None

    @classmethod
    def load_settings(cls, env: Mapping[str, str], common: CommonSettings) -> FileSettings:
        raw = values.text(env, PATH_VARIABLE)
        if raw is None:
            raise IncompleteConfigurationError(NAME, [PATH_VARIABLE])
        if "\0" in raw:
            raise ConfigurationError(
                f"{PATH_VARIABLE} contains a NUL character: give the path of the secret file",
                variable=PATH_VARIABLE,
            )
        path = os.path.abspath(os.path.expanduser(raw))
        return FileSettings(secret_path=path, **common.kwargs())

    def fetch(self) -> FetchedSecret:
        path = self.settings.secret_path
        try:
            st = os.stat(path)
        except OSError as error:
            raise self._os_error(error) from None
        self._require_regular(st)
        last = self._last
        if last is not None and not last.racy and last.signature == _signature(st):
            logger.debug("Secret file unchanged since it was read (path=%s)", path)
            return last.fetched
        return self._read(path)

    def advice(self) -> list[Advice]:
        """A secret file that group or others may read (or write) is a credential shared with
        every account on the machine or pod."""
        path = self.settings.secret_path
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
            resolved = os.path.realpath(path)
        except OSError:
            return []  # the read check reports why the file cannot be used
        if not mode & 0o077:
            return []
        where = path if resolved == path else f"{path} (-> {resolved})"
        return [
            Advice(
                detail=f"the secret file {where} has mode {mode:04o}: readable or writable by "
                "group or others",
                fix=f"chmod 600 {resolved}; for a Kubernetes Secret volume set defaultMode: 0400 "
                "(with fsGroup or runAsUser so the pod's user can still read it)",
            )
        ]

    # -- reading ---------------------------------------------------------------------------------

    def _read(self, path: str) -> FetchedSecret:
        try:
            with open(path, "rb") as handle:
                st = os.fstat(handle.fileno())
                self._require_regular(st)
                content = handle.read(MAX_BYTES + 1)
        except OSError as error:
            raise self._os_error(error) from None
        read_at = time.time_ns()
        if len(content) > MAX_BYTES:
            raise BackendError(
                NAME,
                "read",
                f"{path} ({PATH_VARIABLE}) is larger than {MAX_BYTES // 1024} KiB: not a secret",
                f"that {PATH_VARIABLE} names the file holding the secret",
            )
        try:
            text = content.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise BackendError(
                NAME,
                "parse",
                f"{path} ({PATH_VARIABLE}) is not UTF-8 text",
                "store the secret as UTF-8 JSON or a plain token",
            ) from None
        if not text.strip():
            raise BackendError(
                NAME,
                "read",
                f"{path} ({PATH_VARIABLE}) is empty",
                "the tool that writes it (the Kubernetes Secret's key, the agent's template), "
                "and that it writes the secret itself, not an empty key",
            )
        signature = _signature(st)
        racy = read_at - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_WINDOW_NS
        last = self._last
        if last is not None and last.fetched.payload == text:
            fetched = last.fetched  # same secret: keep the object, the change was metadata only
        else:
            modified = datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=timezone.utc)
            fetched = FetchedSecret(
                text, version=f"modified {modified.isoformat(timespec='seconds')}", location=path
            )
        self._last = _Read(signature, fetched, racy)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "Secret file read (path=%s, resolved=%s, version=%s)",
                path,
                os.path.realpath(path),
                fetched.version,
            )
        return fetched

    def _require_regular(self, st: os.stat_result) -> None:
        """A directory, FIFO or device is never the secret (and a FIFO would block a read)."""
        if stat.S_ISREG(st.st_mode):
            return
        path = self.settings.secret_path
        if stat.S_ISDIR(st.st_mode):
            raise BackendError(
                NAME,
                "read",
                f"{path} ({PATH_VARIABLE}) is a directory",
                (
                    f"that {PATH_VARIABLE} names the file inside it that holds the secret"
                    + _entries(path)
                ),
            )
        raise BackendError(
            NAME,
            "read",
            f"{path} ({PATH_VARIABLE}) is not a regular file",
            f"that {PATH_VARIABLE} names the file that holds the secret",
        )

    def _os_error(self, error: OSError) -> BackendError:
        path = self.settings.secret_path
        if isinstance(error, FileNotFoundError | NotADirectoryError):
            dangling = os.path.islink(path)
            detail = f"{path} ({PATH_VARIABLE}) does not exist" + (
                " (it is a symbolic link to a missing file)" if dangling else ""
            )
            return BackendError(
                NAME,
                "read",
                detail,
                f"the path in {PATH_VARIABLE}, and that the volume or agent that writes the file "
                "is mounted in this container and has written it (ls -l the directory)",
            )
        if isinstance(error, PermissionError):
            uid = f" (uid {os.geteuid()})" if hasattr(os, "geteuid") else ""
            return BackendError(
                NAME,
                "read",
                f"{path} ({PATH_VARIABLE}) is not readable by this process{uid}",
                _PERMISSION_FIX,
            )
        reason = error.strerror or type(error).__name__
        return BackendError(
            NAME,
            "read",
            f"{path} ({PATH_VARIABLE}) could not be read ({reason})",
            f"the file named by {PATH_VARIABLE} and the volume it is on",
        )


def _entries(directory: str) -> str:
    """The file names in a directory (a Kubernetes Secret's keys: names, never contents)."""
    try:
        names = sorted(n for n in os.listdir(directory) if not n.startswith("."))
    except OSError:
        return ""
    if not names:
        return " (the directory is empty)"
    shown = ", ".join(names[:_LISTED_ENTRIES])
    more = f" and {len(names) - _LISTED_ENTRIES} more" if len(names) > _LISTED_ENTRIES else ""
    return f" (it holds: {shown}{more})"
