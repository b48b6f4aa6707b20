"""kite.key creation and verification (protocol.md §6.1, §6.2 kiteKey)."""

from __future__ import annotations

import uuid

import pytest
from auth_forge import NOW, parts
from kite_auth_token import (
    KeyPair,
    KiteKeyClaims,
    TokenError,
    create_kite_key,
    unverified_kontrol_key,
    verify_kite_key,
)

KONTROL_URL = "http://kontrol.example.com:4000/kite"


def make(pair: KeyPair, **overrides: object) -> str:
    args: dict[str, object] = {
        "username": "alice",
        "issuer": "koding",
        "kontrol_url": KONTROL_URL,
        "public_key": pair.public,
        "private_key": pair.private,
        "now": NOW,
    }
    args.update(overrides)
    return create_kite_key(**args)  # type: ignore[arg-type]


def test_kite_key_claims_match_kontrol_register_user(kontrol_pair: KeyPair) -> None:
    header, claims = parts(make(kontrol_pair, public_key="\n" + kontrol_pair.public + "\n"))
    assert header == {"alg": "RS256", "typ": "JWT"}
    assert set(claims) == {"iss", "sub", "iat", "jti", "kontrolURL", "kontrolKey"}
    assert claims["iss"] == "koding"
    assert claims["sub"] == "alice"
    assert claims["iat"] == NOW - 300 and type(claims["iat"]) is int
    assert uuid.UUID(claims["jti"]).version == 4
    assert claims["kontrolURL"] == KONTROL_URL
    assert claims["kontrolKey"] == kontrol_pair.public  # stripped, as Go does


def test_kite_key_jti_can_be_given(kontrol_pair: KeyPair) -> None:
    assert parts(make(kontrol_pair, jti="machine-1"))[1]["jti"] == "machine-1"


def test_create_refuses_a_mismatched_pair_and_empty_names(
    kontrol_pair: KeyPair, attacker_pair: KeyPair
) -> None:
    with pytest.raises(ValueError, match="does not belong"):
        make(kontrol_pair, private_key=attacker_pair.private)
    with pytest.raises(ValueError, match="username"):
        make(kontrol_pair, username="")
    with pytest.raises(ValueError, match="issuer"):
        make(kontrol_pair, issuer="")


def test_verify_with_own_kontrol_key(kontrol_pair: KeyPair) -> None:
    claims = verify_kite_key(make(kontrol_pair, jti="j1"), trust=kontrol_pair.public, now=NOW)
    assert isinstance(claims, KiteKeyClaims)
    assert claims.username == claims.subject == "alice"
    assert claims.issuer == "koding"
    assert claims.id == "j1"
    assert claims.kontrol_url == KONTROL_URL
    assert claims.kontrol_key == kontrol_pair.public
    assert claims.issued_at == NOW - 300
    assert claims.expires_at is None and claims.audience == ""


def test_trust_by_key_not_by_pem_text(kontrol_pair: KeyPair) -> None:
    body = "".join(kontrol_pair.public.splitlines()[1:-1])
    rewrapped = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----"
    assert rewrapped != kontrol_pair.public
    assert verify_kite_key(make(kontrol_pair), trust=rewrapped, now=NOW).subject == "alice"


def test_trust_predicate_sees_the_embedded_key(
    kontrol_pair: KeyPair, attacker_pair: KeyPair
) -> None:
    seen: list[str] = []

    def storage_knows(pem: str) -> bool:
        seen.append(pem)
        return pem in {kontrol_pair.public, attacker_pair.public}

    other = make(attacker_pair, username="bob")
    assert verify_kite_key(other, trust=storage_knows, now=NOW).subject == "bob"
    assert seen == [attacker_pair.public]
    with pytest.raises(TokenError, match=r"^kontrol key is not trusted$"):
        verify_kite_key(make(kontrol_pair), trust=lambda pem: False, now=NOW)


def test_unverified_kontrol_key_for_async_lookups(kontrol_pair: KeyPair) -> None:
    token = make(kontrol_pair)
    assert unverified_kontrol_key(token) == kontrol_pair.public
    with pytest.raises(TokenError, match="no kontrol key found"):
        unverified_kontrol_key(
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.sig"  # {"alg":"RS256"}.{"sub":"alice"}
        )


def test_kite_keys_do_not_expire_by_default(kontrol_pair: KeyPair) -> None:
    token = make(kontrol_pair)
    far_future = NOW + 20 * 365 * 86400
    assert verify_kite_key(token, trust=kontrol_pair.public, now=far_future).subject == "alice"
    assert verify_kite_key(token, trust=kontrol_pair.public).subject == "alice"
    with pytest.raises(TokenError, match=r"^Token used before issued$"):
        verify_kite_key(token, trust=kontrol_pair.public, now=NOW - 301)
