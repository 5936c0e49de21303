"""The Vault token timeline (renew, replace) and the transient-retry backoff, on a plain clock."""

from __future__ import annotations

import pytest

from mlflow_secrets_auth.backends.vault_retry import (
    FIRST_DELAY_SEC,
    MAX_DELAY_SEC,
    backoff_delay,
)
from mlflow_secrets_auth.backends.vault_token import TokenLease, no_expiry


def lease(ttl: float = 60.0, renewable: bool = True) -> TokenLease:
    return TokenLease(issued=100.0, ttl=ttl, renewable=renewable, increment=ttl)


def test_used_until_two_thirds_then_renewed() -> None:
    token = lease()
    assert token.action(100.0) == "use"
    assert token.action(139.9) == "use"
    assert token.action(140.0) == "renew"


def test_not_renewable_is_replaced_at_two_thirds() -> None:
    assert lease(renewable=False).action(140.0) == "replace"


def test_renewed_however_late_until_it_expires_then_replaced() -> None:
    token = lease()
    assert token.action(159.9) == "renew"
    assert token.action(160.0) == "replace"
    assert token.action(1000.0) == "replace"


def test_a_full_renewal_keeps_it_renewable() -> None:
    renewed = lease().renewed(140.0, 60.0, renewable=True)
    assert (renewed.issued, renewed.ttl, renewed.renewable) == (140.0, 60.0, True)
    assert renewed.action(179.0) == "use"
    assert renewed.action(180.0) == "renew"


def test_a_capped_renewal_means_the_max_ttl_is_near() -> None:
    capped = lease().renewed(140.0, 15.0, renewable=True)
    assert capped.renewable is False
    assert capped.action(145.0) == "use"
    assert capped.action(150.0) == "replace"  # two thirds of what is left: log in again


def test_a_renewal_that_grants_nothing_means_replace_now() -> None:
    assert lease().renewed(140.0, 0.0, renewable=True).action(140.01) == "replace"


def test_no_expiry_is_always_used() -> None:
    assert no_expiry().action(1e12) == "use"


def test_backoff_doubles_with_jitter_within_bounds() -> None:
    for attempt in range(10):
        ceiling = min(MAX_DELAY_SEC, FIRST_DELAY_SEC * 2**attempt)
        delays = [backoff_delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered, so clients do not retry in step
    assert backoff_delay(1) > FIRST_DELAY_SEC / 2


@pytest.mark.parametrize("attempt", [0, 3, 50])
def test_backoff_never_exceeds_the_cap(attempt: int) -> None:
    assert backoff_delay(attempt) <= MAX_DELAY_SEC
