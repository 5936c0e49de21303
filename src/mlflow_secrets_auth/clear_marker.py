"""``cache clear`` across processes: a marker file on disk, never a secret.

Every process keeps its credentials in memory only (SPEC §6), so "clear the cache" cannot be an
operation on shared storage. Instead ``mlflow-secrets-auth cache clear`` rewrites a small marker
file with a fresh random generation id, and each process that uses the plugin calls
:meth:`ClearMarker.poll` before a request: when the marker changed since it last looked, the
process drops its cached credentials. The file holds the generation id and a time stamp only.

The marker lives in a per-user directory: ``$MLFLOW_SECRETS_CACHE_DIR`` if set, else
``$XDG_CACHE_HOME/mlflow-secrets-auth``, else ``~/.cache/mlflow-secrets-auth``. Processes that
resolve a different directory (another user, another ``HOME``) do not see each other's clears.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from pathlib import Path

from .log import get_logger

logger = get_logger(__name__)

CACHE_DIR_VARIABLE = "MLFLOW_SECRETS_CACHE_DIR"
MARKER_NAME = "clear-marker"
DEFAULT_POLL_INTERVAL = 0.1
_MAX_MARKER_BYTES = 4096

#: What identifies one version of the marker file: any rewrite changes at least one of these
#: (an atomic replace always brings a new inode; the mtime catches in-place edits).
Signature = tuple[int, int, int]


def marker_directory(environ: Mapping[str, str] | None = None) -> Path:
    """The per-user directory that holds the marker (see the module docstring for the order)."""
    env = os.environ if environ is None else environ
    explicit = (env.get(CACHE_DIR_VARIABLE) or "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = (env.get("XDG_CACHE_HOME") or "").strip()
    # XDG says a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "mlflow-secrets-auth"


class ClearMarker:
    """One process's view of the clear marker: request a clear, describe it, or poll it.

    ``poll`` is on the per-request path, so it is cheap: between two ``os.stat`` calls at least
    ``interval`` seconds pass (measured with a monotonic clock); in between it costs one clock
    read and a comparison. It is thread-safe: each change is reported to exactly one caller.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        interval: float = DEFAULT_POLL_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval < 0:
            raise ValueError("interval must be zero or positive")
        self._directory = None if directory is None else Path(directory)
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._next_check = -float("inf")
        self._seen = False
        self._last: tuple[Path, Signature | None] | None = None

    # -- where ---------------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The marker's directory; resolved from the environment on each use unless given."""
        return self._directory if self._directory is not None else marker_directory()

    @property
    def path(self) -> Path:
        return self.directory / MARKER_NAME

    # -- writer (the CLI) ----------------------------------------------------------------------

    def request_clear(self) -> str:
        """Rewrite the marker with a fresh generation id (atomic replace); return the id.

        Raises OSError when the directory cannot be created or written.
        """
        directory = self.directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        generation = secrets.token_hex(16)
        content = json.dumps(
            {"generation": generation, "requested_at": _utc_now(), "pid": os.getpid()}
        )
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=f".{MARKER_NAME}-")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(content + "\n")
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, directory / MARKER_NAME)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        logger.info("Cache clear requested (generation=%s, marker=%s)", generation, self.path)
        return generation

    # -- reader (every process) ----------------------------------------------------------------

    def poll(self) -> bool:
        """True once each time the marker changed since this process last looked.

        The first look only records the current state. A marker that appears where there was
        none counts as a change (a process started before the first ``cache clear`` must see
        it); a marker that disappears does not. Any OSError means "no marker".
        """
        if self._clock() < self._next_check:  # unlocked fast path; a float read is atomic
            return False
        with self._lock:
            now = self._clock()
            if now < self._next_check:
                return False
            self._next_check = now + self._interval
            path = self.path
            signature = _signature(path)
            last, self._last = self._last, (path, signature)
            if not self._seen or last is None or last[0] != path:
                self._seen = True  # first look, or a different directory: a new baseline
                return False
            changed = signature is not None and signature != last[1]
        if changed:
            logger.debug("Cache clear marker changed (%s): dropping cached credentials", path)
        return changed

    def after_fork_in_child(self) -> None:
        """A new lock: one held by a parent thread would block the child forever. What the
        parent last saw stays, so the child reports only clears made after that."""
        self._lock = threading.Lock()

    # -- description (cache status) ------------------------------------------------------------

    def status(self) -> dict[str, object]:
        """What the marker says: path, whether it exists, its generation and when it changed."""
        path = self.path
        result: dict[str, object] = {
            "path": str(path),
            "directory": str(path.parent),
            "exists": False,
            "generation": None,
            "requested_at": None,
            "changed_at": None,
        }
        try:
            info = path.stat()
            with path.open("rb") as stream:
                raw = stream.read(_MAX_MARKER_BYTES)
        except OSError as error:
            if not isinstance(error, FileNotFoundError):
                result["error"] = f"{type(error).__name__}: {error.strerror or error}"
            return result
        result["exists"] = True
        result["changed_at"] = datetime.fromtimestamp(info.st_mtime, timezone.utc).isoformat(
            timespec="seconds"
        )
        try:
            data = json.loads(raw.decode("utf-8"))
        except ValueError:
            data = None
        if isinstance(data, dict):
            result["generation"] = _short_text(data.get("generation"))
            result["requested_at"] = _short_text(data.get("requested_at"))
        else:
            result["error"] = "the marker is not in the expected format (it is rewritten by clear)"
        return result

    def __repr__(self) -> str:
        return f"ClearMarker(path={str(self.path)!r}, interval={self._interval:g})"


def _signature(path: Path) -> Signature | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_ino, info.st_size)


def _short_text(value: object) -> str | None:
    return value[:64] if isinstance(value, str) else None


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


#: The marker every process shares by default (directory resolved from the environment).
MARKER = ClearMarker()
