"""Forged tokens and kite.keys, made by hand: every one must be rejected with a clear reason."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from auth_forge import (
    NOW,
    b64url,
    hs256_signed,
    parts,
    rsa_signed,
    segment,
    unsigned,
    with_claims,
)
from kite_auth_token import (
    KeyPair,
    KiteIdentity,
    TokenError,
    create_kite_key,
    mint_token,
    verify_kite_key,
    verify_token,
)
from kite_auth_token.compact import signature_is_valid
from kite_auth_token.keys import load_public_key

RS256 = {"alg": "RS256", "typ": "JWT"}


def good_claims() -> dict[str, object]:
    return {
        "iss": "kontrol",
        "sub": "alice",
        "aud": "/bob/production/math",
        "exp": NOW + 3600,
        "iat": NOW - 300,
        "nbf": NOW - 300,
        "jti": "forged",
    }


def reject_token(token: str, pair: KeyPair, kite: KiteIdentity | None = None) -> str:
    """Verify expecting rejection; return the reason."""
    with pytest.raises(TokenError) as info:
        verify_token(token, public_key=pair.public, issuer="kontrol", kite=kite, now=NOW)
    return str(info.value)


# --- tokens -----------------------------------------------------------------------------------


def test_control_a_well_formed_forgery_signed_by_kontrol_passes(kontrol_pair: KeyPair) -> None:
    # The forging helpers are sound: the same claims signed with the right key are accepted.
    token = rsa_signed(RS256, good_claims(), kontrol_pair.private)
    assert verify_token(token, public_key=kontrol_pair.public, issuer="kontrol", now=NOW)


def test_token_signed_by_unknown_key_reads_as_expired(
    kontrol_pair: KeyPair, attacker_pair: KeyPair
) -> None:
    token = rsa_signed(RS256, good_claims(), attacker_pair.private)
    assert reject_token(token, kontrol_pair) == "token is expired"


def test_token_minted_by_library_with_other_key_reads_as_expired(
    kontrol_pair: KeyPair, attacker_pair: KeyPair
) -> None:
    token = mint_token(
        issuer="kontrol", subject="alice", audience="/", private_key=attacker_pair.private, now=NOW
    )
    assert reject_token(token, kontrol_pair) == "token is expired"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "e30"])
def test_alg_none_is_rejected(kontrol_pair: KeyPair, alg: str, signature: str) -> None:
    token = unsigned({"alg": alg, "typ": "JWT"}, good_claims(), signature)
    assert reject_token(token, kontrol_pair) == "invalid signing method"


def test_missing_alg_is_rejected(kontrol_pair: KeyPair) -> None:
    token = unsigned({"typ": "JWT"}, good_claims(), "e30")
    assert reject_token(token, kontrol_pair) == "invalid signing method"


@pytest.mark.parametrize(
    "secret_of", [lambda p: p.public, lambda p: p.public + "\n", lambda p: p.public.strip()]
)
def test_hs256_signed_with_the_public_key_is_rejected(
    kontrol_pair: KeyPair, secret_of: Callable[[KeyPair], str]
) -> None:
    secret = secret_of(kontrol_pair).encode()
    token = hs256_signed({"alg": "HS256", "typ": "JWT"}, good_claims(), secret)
    assert reject_token(token, kontrol_pair) == "invalid signing method"
    # Defence in depth: joserfc's allow-list refuses it even without the header check.
    assert not signature_is_valid(token, kontrol_pair.public)


@pytest.mark.parametrize("alg", ["HS256", "HS512", "ES256", "PS256", "RS384", "RS512", "EdDSA"])
def test_other_algorithms_are_not_allowed(kontrol_pair: KeyPair, alg: str) -> None:
    token = rsa_signed({"alg": alg, "typ": "JWT"}, good_claims(), kontrol_pair.private)
    assert reject_token(token, kontrol_pair) == "invalid signing method"


def test_rs384_with_a_valid_signature_is_still_refused(kontrol_pair: KeyPair) -> None:
    token = rsa_signed({"alg": "RS384"}, good_claims(), kontrol_pair.private, digest="sha384")
    assert reject_token(token, kontrol_pair) == "invalid signing method"
    assert not signature_is_valid(token, kontrol_pair.public)


def test_key_embedded_in_the_header_is_ignored(
    kontrol_pair: KeyPair, attacker_pair: KeyPair
) -> None:
    jwk = load_public_key(attacker_pair.public).as_dict(private=False)
    header = {**RS256, "jwk": jwk, "kid": attacker_pair.id}
    token = rsa_signed(header, good_claims(), attacker_pair.private)
    assert reject_token(token, kontrol_pair) == "token is expired"


@pytest.mark.parametrize(
    "changes",
    [
        {"sub": "root"},
        {"aud": "/"},
        {"exp": NOW + 10 * 365 * 86400},
        {"iss": "kontrol", "extra": True},
    ],
)
def test_tampered_claims_with_original_signature_read_as_expired(
    kontrol_pair: KeyPair, changes: dict[str, object]
) -> None:
    token = rsa_signed(RS256, good_claims(), kontrol_pair.private)
    assert reject_token(with_claims(token, **changes), kontrol_pair) == "token is expired"


def test_tampered_header_is_rejected(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, good_claims(), kontrol_pair.private)
    _, payload, signature = token.split(".")
    retyped = f"{segment({'alg': 'RS256', 'typ': 'JOSE'})}.{payload}.{signature}"
    assert reject_token(retyped, kontrol_pair) == "token is expired"


def test_garbage_signature_reads_as_expired(kontrol_pair: KeyPair) -> None:
    head, payload, _ = rsa_signed(RS256, good_claims(), kontrol_pair.private).split(".")
    assert reject_token(f"{head}.{payload}.!!notbase64", kontrol_pair) == "token is expired"
    assert reject_token(f"{head}.{payload}.", kontrol_pair) == "token is expired"


def test_expired_token(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, {**good_claims(), "exp": NOW - 1}, kontrol_pair.private)
    assert reject_token(token, kontrol_pair) == "token is expired"


def test_not_yet_valid_token(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, {**good_claims(), "nbf": NOW + 60}, kontrol_pair.private)
    assert reject_token(token, kontrol_pair) == "token is not valid yet"


def test_wrong_issuer(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, {**good_claims(), "iss": "evil"}, kontrol_pair.private)
    assert reject_token(token, kontrol_pair) == "issuer is not trusted: evil"
    no_issuer = {k: v for k, v in good_claims().items() if k != "iss"}
    token = rsa_signed(RS256, no_issuer, kontrol_pair.private)
    assert reject_token(token, kontrol_pair) == "issuer is not trusted: "


def test_wrong_audience_another_users_kite(kontrol_pair: KeyPair) -> None:
    class Carol:
        username, environment, name = "carol", "production", "math"

    token = rsa_signed(RS256, good_claims(), kontrol_pair.private)
    reason = reject_token(token, kontrol_pair, kite=Carol())
    assert reason == 'audience: username "bob" not allowed (/bob/production/math)'


def test_audience_as_list_is_malformed(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, {**good_claims(), "aud": ["/"]}, kontrol_pair.private)
    assert reject_token(token, kontrol_pair) == "malformed token: claim 'aud' must be a string"


@pytest.mark.parametrize(
    ("changes", "claim"),
    [
        ({"exp": NOW + 0.5}, "exp"),
        ({"exp": str(NOW + 60)}, "exp"),
        ({"nbf": True}, "nbf"),
        ({"iat": [1]}, "iat"),
        ({"sub": 7}, "sub"),
        ({"iss": {"a": 1}}, "iss"),
    ],
)
def test_mistyped_claims_are_malformed(
    kontrol_pair: KeyPair, changes: dict[str, object], claim: str
) -> None:
    token = rsa_signed(RS256, {**good_claims(), **changes}, kontrol_pair.private)
    assert reject_token(token, kontrol_pair).startswith(f"malformed token: claim {claim!r}")


_HEAD = segment(RS256)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        _HEAD + ".@@@.sig",
        _HEAD + "." + b64url(b"not json") + ".sig",
        _HEAD + "." + segment([1, 2]) + ".sig",
        _HEAD + "." + b64url(b'{"exp": NaN}') + ".sig",
        b64url(b"{bad") + "." + segment({}) + ".sig",
        _HEAD + "." + b64url(bytes([0xFF, 0xFE])) + ".sig",
        _HEAD + "." + b64url(json.dumps({"a": 1}).encode())[:-2] + "+/.sig",
    ],
)
def test_malformed_tokens(kontrol_pair: KeyPair, token: str) -> None:
    reason = reject_token(token, kontrol_pair)
    assert reason.startswith("malformed token") or "segments" in reason


# --- kite.keys --------------------------------------------------------------------------------


def kite_key_claims(pair: KeyPair, **changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": "kontrol",
        "sub": "alice",
        "iat": NOW - 300,
        "jti": "forged",
        "kontrolURL": "http://kontrol.example:4000/kite",
        "kontrolKey": pair.public,
    }
    claims.update(changes)
    return claims


def reject_kite_key(token: str, trusted: KeyPair) -> str:
    with pytest.raises(TokenError) as info:
        verify_kite_key(token, trust=trusted.public, now=NOW)
    return str(info.value)


def test_kite_key_from_an_untrusted_kontrol(kontrol_pair: KeyPair, attacker_pair: KeyPair) -> None:
    # Self-consistent: signed by the private half of the key it embeds, but not our Kontrol's key.
    forged = create_kite_key(
        username="alice",
        issuer="kontrol",
        kontrol_url="http://evil/kite",
        public_key=attacker_pair.public,
        private_key=attacker_pair.private,
        now=NOW,
    )
    assert reject_kite_key(forged, kontrol_pair) == "kontrol key is not trusted"
    by_hand = rsa_signed(RS256, kite_key_claims(attacker_pair), attacker_pair.private)
    assert reject_kite_key(by_hand, kontrol_pair) == "kontrol key is not trusted"


def test_kite_key_claiming_our_key_but_signed_by_another(
    kontrol_pair: KeyPair, attacker_pair: KeyPair
) -> None:
    token = rsa_signed(RS256, kite_key_claims(kontrol_pair), attacker_pair.private)
    assert reject_kite_key(token, kontrol_pair) == "Invalid signature in kite key"


def test_kite_key_with_tampered_subject(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, kite_key_claims(kontrol_pair), kontrol_pair.private)
    assert verify_kite_key(token, trust=kontrol_pair.public, now=NOW).subject == "alice"
    tampered = with_claims(token, sub="root")
    assert reject_kite_key(tampered, kontrol_pair) == "Invalid signature in kite key"


@pytest.mark.parametrize("alg", ["none", "HS256"])
def test_kite_key_alg_none_and_hmac_confusion(kontrol_pair: KeyPair, alg: str) -> None:
    claims = kite_key_claims(kontrol_pair)
    if alg == "none":
        token = unsigned({"alg": "none", "typ": "JWT"}, claims)
    else:
        token = hs256_signed({"alg": "HS256"}, claims, kontrol_pair.public.encode())
    assert reject_kite_key(token, kontrol_pair) == "invalid signing method"


def test_kite_key_without_kontrol_key(kontrol_pair: KeyPair) -> None:
    for claims in (
        kite_key_claims(kontrol_pair, kontrolKey=""),
        {k: v for k, v in kite_key_claims(kontrol_pair).items() if k != "kontrolKey"},
    ):
        token = rsa_signed(RS256, claims, kontrol_pair.private)
        assert reject_kite_key(token, kontrol_pair) == "no kontrol key found"


def test_kite_key_with_a_non_key_in_kontrol_key(kontrol_pair: KeyPair) -> None:
    claims = kite_key_claims(kontrol_pair, kontrolKey=kontrol_pair.private)
    token = rsa_signed(RS256, claims, kontrol_pair.private)
    assert reject_kite_key(token, kontrol_pair).startswith("invalid kontrol key: ")


def test_kite_key_without_username(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, kite_key_claims(kontrol_pair, sub=""), kontrol_pair.private)
    assert reject_kite_key(token, kontrol_pair) == "token has no username"


def test_expired_kite_key(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, kite_key_claims(kontrol_pair, exp=NOW - 1), kontrol_pair.private)
    assert reject_kite_key(token, kontrol_pair) == "token is expired"


def test_token_is_not_accepted_as_kite_key(kontrol_pair: KeyPair) -> None:
    token = rsa_signed(RS256, good_claims(), kontrol_pair.private)
    assert reject_kite_key(token, kontrol_pair) == "no kontrol key found"


def test_kite_key_is_not_accepted_as_token(kontrol_pair: KeyPair) -> None:
    kite_key = create_kite_key(
        username="alice",
        issuer="kontrol",
        kontrol_url="http://k/kite",
        public_key=kontrol_pair.public,
        private_key=kontrol_pair.private,
        now=NOW,
    )
    assert parts(kite_key)[1]["iss"] == "kontrol"
    assert reject_token(kite_key, kontrol_pair) == "token has no expiry"
