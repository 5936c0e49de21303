"""The checks as data and the state one run carries from step to step.

Every step module adds its findings through :class:`_Run`, so this is the one place that
knows how a check is recorded, how an unexpected error becomes a failed check, and how a
slow backend or server call is cut off.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Literal, TypeVar

from ..backends.base import Backend, FetchedSecret
from ..credentials import Credential
from ..log import get_logger
from ..profiles import Profile
from ..settings import GeneralSettings, Settings

# The package's name, not this module's: debug records keep the logger name they always had.
logger = get_logger(__name__.rpartition(".")[0])

Status = Literal["passed", "failed", "warning", "skipped"]
T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One diagnostic result; ``fix`` says what to do when the check failed or warned."""

    id: str
    title: str
    status: Status
    detail: str
    fix: str = ""
    #: The profile (SPEC §11) a credential check is about; None for the environment alone.
    profile: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return asdict(self)


def summarize(checks: list[Check]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "warning": 0, "skipped": 0}
    for check in checks:
        counts[check.status] += 1
    return counts


def doctor_ok(checks: list[Check]) -> bool:
    """Exit status basis: no check failed (warnings and skipped checks do not fail)."""
    return all(check.status != "failed" for check in checks)


class _Run:
    """State carried from one check to the next."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.env = environ
        self.checks: list[Check] = []
        self.general: GeneralSettings | None = None
        self.settings: Settings | None = None
        self.backend: Backend | None = None
        self.fetched: FetchedSecret | None = None
        self.credential: Credential | None = None
        self.blocked: str | None = None  # why the credential chain stopped
        #: The profile being checked, when a configuration file defines profiles.
        self.profile: Profile | None = None

    def add(self, check: Check) -> None:
        self.checks.append(check)
        logger.debug("Doctor check %s: %s", check.id, check.status)

    def guarded(self, check_id: str, title: str, action: Callable[[], None]) -> None:
        """Run one step; an unexpected error becomes a failed check, never a traceback."""
        try:
            action()
        except Exception as error:  # the type only: an SDK's text may quote a response
            logger.debug("Doctor check %s raised %s", check_id, type(error).__name__)
            self.add(
                Check(
                    check_id,
                    title,
                    "failed",
                    f"unexpected error while checking ({type(error).__name__})",
                    "run with MLFLOW_SECRETS_LOG_LEVEL=DEBUG for details, and report it",
                )
            )
            self.blocked = self.blocked or f"{title.lower()} failed"


def _why(run: _Run) -> str:
    return run.blocked or "no credential was obtained"


class _Overtime(Exception):
    """The backend call outlived its time budget."""


def _bounded(action: Callable[[], T], limit: float) -> T:
    """Run ``action`` in a daemon thread and give up after ``limit`` seconds.

    The backends bound each network call by MLFLOW_SECRETS_TIMEOUT_SEC already; this is the
    backstop that keeps ``doctor`` itself bounded whatever an SDK does.
    """
    result: list[T] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(action())
        except BaseException as error:
            failure.append(error)

    worker = threading.Thread(target=target, name="mlflow-secrets-auth-doctor", daemon=True)
    worker.start()
    worker.join(limit)
    if worker.is_alive():
        raise _Overtime
    if failure:
        raise failure[0]
    return result[0]
