"""Kontrol tokens: minting (claims, Go interop) and the verification rules of protocol.md §6.2."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from auth_forge import NOW, parts, rsa_signed
from kite_auth_token import (
    TOKEN_LEEWAY,
    TOKEN_TTL,
    KeyFormatError,
    KeyPair,
    TokenError,
    mint_token,
    verify_token,
)


@dataclass(frozen=True)
class Kite:
    username: str
    environment: str
    name: str


BOB_MATH = Kite("bob", "production", "math")


def mint(pair: KeyPair, **overrides: object) -> str:
    args: dict[str, object] = {
        "issuer": "kontrol",
        "subject": "alice",
        "audience": "/bob/production/math",
        "private_key": pair.private,
        "now": NOW,
    }
    args.update(overrides)
    return mint_token(**args)  # type: ignore[arg-type]


def test_minted_claims_follow_kontrol(kontrol_pair: KeyPair) -> None:
    token = mint(kontrol_pair, jti="fixed-id")
    header, claims = parts(token)
    assert header == {"alg": "RS256", "typ": "JWT"}
    assert claims == {
        "iss": "kontrol",
        "sub": "alice",
        "aud": "/bob/production/math",
        "exp": NOW + 48 * 3600 + 300,
        "iat": NOW - 300,
        "nbf": NOW - 300,
        "jti": "fixed-id",
    }
    assert TOKEN_TTL == 48 * 3600 and TOKEN_LEEWAY == 300


def test_minted_token_is_parseable_by_go_jwt_go_v3(kontrol_pair: KeyPair) -> None:
    header_segment, payload_segment, _ = mint(kontrol_pair, now=NOW + 0.75).split(".")
    # jwt-go v3 StandardClaims: aud is a string (a list breaks Go), times are int64.
    assert header_segment == "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"RS256","typ":"JWT"}
    _, claims = parts(mint(kontrol_pair, now=NOW + 0.75))
    assert isinstance(claims["aud"], str)
    assert all(type(claims[name]) is int for name in ("exp", "iat", "nbf"))
    assert claims["exp"] == NOW + 48 * 3600 + 300  # truncated like Go's Unix()
    assert "=" not in payload_segment
    assert uuid.UUID(claims["jti"]).version == 4


def test_mint_without_nbf_and_custom_ttl(kontrol_pair: KeyPair) -> None:
    _, claims = parts(mint(kontrol_pair, not_before=False, ttl=60, leeway=5))
    assert "nbf" not in claims
    assert claims["exp"] == NOW + 65
    assert claims["iat"] == NOW - 5


@pytest.mark.parametrize(
    "overrides",
    [{"issuer": ""}, {"subject": ""}, {"audience": ""}, {"ttl": 0}, {"leeway": -1}],
)
def test_mint_rejects_bad_arguments(kontrol_pair: KeyPair, overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        mint(kontrol_pair, **overrides)


def test_each_minted_token_has_a_fresh_jti(kontrol_pair: KeyPair) -> None:
    assert parts(mint(kontrol_pair))[1]["jti"] != parts(mint(kontrol_pair))[1]["jti"]


def test_verify_returns_typed_claims(kontrol_pair: KeyPair) -> None:
    claims = verify_token(
        mint(kontrol_pair), public_key=kontrol_pair.public, issuer="kontrol", kite=BOB_MATH, now=NOW
    )
    assert claims.username == claims.subject == "alice"
    assert claims.audience == "/bob/production/math"
    assert claims.issuer == "kontrol"
    assert claims.expires_at == NOW + 48 * 3600 + 300
    assert claims.not_before == claims.issued_at == NOW - 300


def test_verify_accepts_until_exp_inclusive_and_not_after(kontrol_pair: KeyPair) -> None:
    token = mint(kontrol_pair)
    exp = NOW + 48 * 3600 + 300
    verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", now=exp + 0.9)
    with pytest.raises(TokenError) as info:
        verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", now=exp + 1)
    assert str(info.value) == info.value.reason == "token is expired"


def test_verify_rejects_before_nbf_without_leeway(kontrol_pair: KeyPair) -> None:
    token = mint(kontrol_pair)
    verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", now=NOW - 300)
    with pytest.raises(TokenError, match=r"^token is not valid yet$"):
        verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", now=NOW - 301)


def test_verify_rejects_iat_in_the_future(kontrol_pair: KeyPair) -> None:
    claims = {"iss": "kontrol", "sub": "a", "aud": "/", "exp": NOW + 100, "iat": NOW + 10}
    token = rsa_signed({"alg": "RS256", "typ": "JWT"}, claims, kontrol_pair.private)
    with pytest.raises(TokenError, match=r"^Token used before issued$"):
        verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", now=NOW)


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "kontrol", "sub": "alice", "aud": "/"}, "token has no expiry"),
        ({"iss": "kontrol", "sub": "alice", "aud": "/", "exp": 0}, "token has no expiry"),
        ({"iss": "kontrol", "sub": "alice", "exp": NOW + 60}, "token has no audience"),
        ({"iss": "kontrol", "sub": "alice", "aud": "", "exp": NOW + 60}, "token has no audience"),
        ({"iss": "kontrol", "aud": "/", "exp": NOW + 60}, "token has no username"),
        ({"iss": "kontrol", "sub": None, "aud": "/", "exp": NOW + 60}, "token has no username"),
    ],
)
def test_verify_requires_exp_aud_and_sub(
    kontrol_pair: KeyPair, claims: dict[str, object], reason: str
) -> None:
    token = rsa_signed({"alg": "RS256", "typ": "JWT"}, claims, kontrol_pair.private)
    with pytest.raises(TokenError) as info:
        verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", now=NOW)
    assert str(info.value) == reason


def test_verify_checks_audience_only_when_a_kite_is_given(kontrol_pair: KeyPair) -> None:
    token = mint(kontrol_pair, audience="/bob/production")
    carol = Kite("carol", "production", "math")
    assert verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", now=NOW)
    verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", kite=BOB_MATH, now=NOW)
    with pytest.raises(
        TokenError, match=r'^audience: username "bob" not allowed \(/bob/production\)$'
    ):
        verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", kite=carol, now=NOW)


def test_root_audience_admits_every_kite(kontrol_pair: KeyPair) -> None:
    token = mint(kontrol_pair, audience="/")
    for kite in (BOB_MATH, Kite("zed", "dev", "anything")):
        verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", kite=kite, now=NOW)


def test_verify_uses_the_real_clock_by_default(kontrol_pair: KeyPair) -> None:
    fresh = mint(kontrol_pair, now=None)
    assert verify_token(fresh, public_key=kontrol_pair.public, issuer="kontrol").subject == "alice"
    with pytest.raises(TokenError, match=r"^token is expired$"):
        verify_token(mint(kontrol_pair), public_key=kontrol_pair.public, issuer="kontrol")


def test_verifier_misconfiguration_is_not_a_token_error(kontrol_pair: KeyPair) -> None:
    token = mint(kontrol_pair)
    with pytest.raises(ValueError, match="issuer"):
        verify_token(token, public_key=kontrol_pair.public, issuer="", now=NOW)
    with pytest.raises(KeyFormatError):
        verify_token(token, public_key="not a key", issuer="kontrol", now=NOW)
    with pytest.raises(KeyFormatError):
        verify_token(token, public_key=kontrol_pair.private, issuer="kontrol", now=NOW)
