"""Client-side renewal schedule (§6.4): renew 30 s before exp, retry every 10 s."""

from __future__ import annotations

import time

import pytest
from auth_forge import NOW, unsigned
from kite_auth_token import (
    RENEW_BEFORE,
    RETRY_INTERVAL,
    KeyPair,
    TokenError,
    is_token_expired_error,
    mint_token,
    renew_at,
    renew_delay,
    retry_delay,
    token_expiry,
)


@pytest.fixture
def token(kontrol_pair: KeyPair) -> str:
    return mint_token(
        issuer="kontrol",
        subject="alice",
        audience="/",
        private_key=kontrol_pair.private,
        ttl=3600,
        leeway=300,
        now=NOW,
    )


def test_constants_match_go() -> None:
    assert (RENEW_BEFORE, RETRY_INTERVAL) == (30.0, 10.0)


def test_expiry_and_renewal_time(token: str) -> None:
    assert token_expiry(token) == NOW + 3900
    assert renew_at(token) == NOW + 3870


def test_renew_delay(token: str) -> None:
    assert renew_delay(token, now=NOW) == 3870
    assert renew_delay(token, now=NOW + 3869.5) == 0.5
    assert renew_delay(token, now=NOW + 3870) == 0
    assert renew_delay(token, now=NOW + 10_000) == 0  # overdue: renew now
    assert renew_delay(token) == 0  # NOW is long past on the real clock


def test_renew_delay_with_real_clock(kontrol_pair: KeyPair) -> None:
    fresh = mint_token(
        issuer="k", subject="a", audience="/", private_key=kontrol_pair.private, ttl=600, leeway=0
    )
    assert 560 < renew_delay(fresh) <= 570
    assert renew_at(fresh) == pytest.approx(time.time() + 570, abs=2)


def test_expiry_needs_exp() -> None:
    with pytest.raises(TokenError, match="token has no expiry"):
        token_expiry(unsigned({"alg": "RS256"}, {"sub": "a"}, "x"))
    with pytest.raises(TokenError, match="malformed"):
        token_expiry("garbage.token.here")


def test_expired_token_errors_trigger_renewal() -> None:
    assert is_token_expired_error("token is expired")
    assert is_token_expired_error("authenticationError: token is expired (req-1)")
    assert is_token_expired_error("token is expired by 5s")
    assert not is_token_expired_error("token is not valid yet")
    assert not is_token_expired_error("kontrol key is not trusted")


def test_retry_policy() -> None:
    assert retry_delay("timeout: no response in 15s") == RETRY_INTERVAL
    assert retry_delay("token is expired") == RETRY_INTERVAL
    assert retry_delay("genericError: no kites found") is None
    assert retry_delay("no kites availabile") is None  # Go's ErrNoKitesAvailable text
