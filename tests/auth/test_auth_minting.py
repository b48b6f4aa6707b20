"""Kontrol's token cache: reuse within TTL - leeway, force, keys, bounds."""

from __future__ import annotations

import pytest
from auth_forge import NOW, parts
from kite_auth_token import KeyPair, TokenMinter, verify_token


class Clock:
    def __init__(self, start: float = NOW) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def request(minter: TokenMinter, pair: KeyPair, **overrides: object) -> str:
    args: dict[str, object] = {
        "audience": "/bob/production/math",
        "subject": "alice",
        "issuer": "kontrol",
        "key_pair": pair,
    }
    args.update(overrides)
    return minter.token(**args)  # type: ignore[arg-type]


def test_repeated_requests_get_the_cached_token(kontrol_pair: KeyPair) -> None:
    minter = TokenMinter(clock=Clock())
    first = request(minter, kontrol_pair)
    assert request(minter, kontrol_pair) == first
    assert len(minter) == 1
    claims = verify_token(first, public_key=kontrol_pair.public, issuer="kontrol", now=NOW)
    assert (claims.subject, claims.audience) == ("alice", "/bob/production/math")
    assert claims.expires_at == NOW + 48 * 3600 + 300  # claims use the minter's clock


@pytest.mark.parametrize(
    "change",
    [{"audience": "/bob"}, {"subject": "carol"}, {"issuer": "kontrol-2"}],
)
def test_cache_key_covers_audience_subject_issuer(
    kontrol_pair: KeyPair, change: dict[str, object]
) -> None:
    minter = TokenMinter(clock=Clock())
    first = request(minter, kontrol_pair)
    assert request(minter, kontrol_pair, **change) != first
    assert len(minter) == 2


def test_cache_key_covers_the_key_pair_id(kontrol_pair: KeyPair) -> None:
    minter = TokenMinter(clock=Clock())
    first = request(minter, kontrol_pair)
    renamed = KeyPair(public=kontrol_pair.public, private=kontrol_pair.private, id="other-id")
    assert request(minter, renamed) != first


def test_force_mints_a_new_token_and_caches_it(kontrol_pair: KeyPair) -> None:
    minter = TokenMinter(clock=Clock())
    first = request(minter, kontrol_pair)
    forced = request(minter, kontrol_pair, force=True)
    assert forced != first
    assert parts(forced)[1]["jti"] != parts(first)[1]["jti"]
    assert request(minter, kontrol_pair) == forced


def test_cached_token_is_replaced_after_ttl_minus_leeway(kontrol_pair: KeyPair) -> None:
    clock = Clock()
    minter = TokenMinter(ttl=3600, leeway=300, clock=clock)
    first = request(minter, kontrol_pair)
    clock.now = NOW + 3299
    assert request(minter, kontrol_pair) == first
    clock.now = NOW + 3300
    second = request(minter, kontrol_pair)
    assert second != first
    assert parts(second)[1]["exp"] == NOW + 3300 + 3900


def test_cache_is_bounded_and_clearable(kontrol_pair: KeyPair) -> None:
    minter = TokenMinter(clock=Clock(), max_entries=2)
    oldest = request(minter, kontrol_pair, subject="u1")
    request(minter, kontrol_pair, subject="u2")
    request(minter, kontrol_pair, subject="u3")
    assert len(minter) == 2
    assert request(minter, kontrol_pair, subject="u1") != oldest  # u1 was dropped
    minter.clear()
    assert len(minter) == 0


def test_no_nbf_option_and_bad_settings(kontrol_pair: KeyPair) -> None:
    token = request(TokenMinter(not_before=False, clock=Clock()), kontrol_pair)
    assert "nbf" not in parts(token)[1]
    for bad in ({"ttl": 0}, {"leeway": -1}, {"max_entries": 0}):
        with pytest.raises(ValueError):
            TokenMinter(**bad)  # type: ignore[arg-type]
