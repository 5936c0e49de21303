"""Vault's transient answers, retried where every Vault call passes: hvac's requests session.

A rate limit (429), a server or gateway error (500, 502, 503, 504) or a performance standby
that has not caught up yet (412) says "try again shortly". Mounted as the transport adapter of
hvac's session, the retry covers login, renewal, lookup and read alike, with jittered
exponential backoff, and never past the deadline of the fetch in progress.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter

from ..log import get_logger

logger = get_logger(__name__)

TRANSIENT_STATUSES = frozenset({412, 429, 500, 502, 503, 504})
#: The first retry waits about this long; each further one twice as long, up to the cap.
FIRST_DELAY_SEC = 0.1
MAX_DELAY_SEC = 2.0
#: Shortest time a request is given, even when the deadline is (nearly) spent.
_MIN_REQUEST_TIMEOUT_SEC = 0.5


def backoff_delay(attempt: int) -> float:
    """Seconds before retry ``attempt`` (0-based): half fixed, half random ("equal jitter")."""
    ceiling = min(MAX_DELAY_SEC, FIRST_DELAY_SEC * 2.0**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - timing, not security


def _retry_after(response: Response) -> float | None:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None  # absent, or an HTTP date: use our own backoff


class TransientRetryAdapter(HTTPAdapter):
    """Sends a request again after a transient status, until ``deadline`` (monotonic seconds).

    Without a deadline (outside a fetch) nothing is retried. Each attempt's timeout is cut to
    the time left, so retries never stretch a fetch past ``MLFLOW_SECRETS_TIMEOUT_SEC``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.deadline: float | None = None

    def send(  # type: ignore[override]
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float, float] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: Mapping[str, str] | None = None,
    ) -> Response:
        attempt = 0
        while True:
            response = super().send(
                request,
                stream=stream,
                timeout=self._bounded(timeout),
                verify=verify,
                cert=cert,
                proxies=proxies,
            )
            if response.status_code not in TRANSIENT_STATUSES or self.deadline is None:
                return response
            delay = _retry_after(response)
            delay = backoff_delay(attempt) if delay is None else delay
            if time.monotonic() + delay >= self.deadline:
                return response  # no time left: the caller maps the status to an error
            attempt += 1
            logger.info(
                "Vault answered HTTP %d (transient); retry %d in %.2fs",
                response.status_code,
                attempt,
                delay,
            )
            response.close()
            time.sleep(delay)

    def _bounded(
        self, timeout: float | tuple[float, float] | None
    ) -> float | tuple[float, float] | None:
        if self.deadline is None:
            return timeout
        left = max(_MIN_REQUEST_TIMEOUT_SEC, self.deadline - time.monotonic())
        if timeout is None:
            return left
        if isinstance(timeout, tuple):
            return (min(timeout[0], left), min(timeout[1], left))
        return min(timeout, left)
