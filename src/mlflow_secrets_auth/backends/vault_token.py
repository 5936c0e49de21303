"""When the Vault token in use should be renewed or replaced by a new login.

Pure decisions over a monotonic clock, so the timeline can be tested without a server: renew at
about two thirds of the TTL while renewable; log in again when it is not renewable any more
(or renewal hit the max TTL) and two thirds have passed, or when it has expired.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

#: Share of a token's TTL after which it is renewed (or replaced when it cannot be).
RENEW_AT_FRACTION = 2 / 3

Action = Literal["use", "renew", "replace"]


@dataclass(frozen=True)
class TokenLease:
    """What is known of the token in use. ``ttl`` 0 means no expiry (or none known)."""

    issued: float  # monotonic time the current TTL started
    ttl: float
    renewable: bool
    increment: float  # the TTL to ask for at renewal: the one the token was issued with

    @property
    def expires(self) -> float:
        return self.issued + self.ttl

    def action(self, now: float) -> Action:
        if self.ttl <= 0 or now < self.issued + self.ttl * RENEW_AT_FRACTION:
            return "use"
        if self.renewable and now < self.expires:
            return "renew"  # however late in the last third: renewing is what keeps it
        return "replace"

    def renewed(self, now: float, ttl: float, renewable: bool) -> TokenLease:
        """The lease after a renewal that granted ``ttl``. Less than asked means the max TTL is
        near: no further renewal helps, so the token is replaced once two thirds have passed."""
        at_max = ttl < self.increment
        # Nothing granted (0) is "no time left", never "no expiry": replace it at once.
        ttl = ttl if ttl > 0 else 1e-6
        return replace(self, issued=now, ttl=ttl, renewable=renewable and not at_max)


def no_expiry() -> TokenLease:
    """A user-supplied token that is not renewed: used as is until Vault refuses it."""
    return TokenLease(issued=0.0, ttl=0.0, renewable=False, increment=0.0)
