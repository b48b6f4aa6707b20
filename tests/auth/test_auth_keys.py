"""RSA key pairs: generation, PEM loading, fingerprints."""

from __future__ import annotations

import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from kite_auth_token import (
    KeyFormatError,
    KeyPair,
    check_key_pair,
    generate_key_pair,
    key_fingerprint,
    load_private_key,
    load_public_key,
    same_public_key,
)


def test_generate_key_pair_returns_matching_2048_bit_pems() -> None:
    public, private = generate_key_pair()
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    assert public.endswith("-----END PUBLIC KEY-----")
    assert private.startswith("-----BEGIN RSA PRIVATE KEY-----")
    loaded = serialization.load_pem_public_key(public.encode())
    assert isinstance(loaded, rsa.RSAPublicKey)
    assert loaded.key_size == 2048
    check_key_pair(public, private)


def test_load_public_key_accepts_pkcs1_and_rejects_other_keys(kontrol_pair: KeyPair) -> None:
    assert not load_public_key(kontrol_pair.public).is_private
    with pytest.raises(KeyFormatError, match="got a private key"):
        load_public_key(kontrol_pair.private)
    with pytest.raises(KeyFormatError, match="not a PEM-encoded RSA public key"):
        load_public_key("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----")
    with pytest.raises(KeyFormatError, match="empty"):
        load_public_key("  ")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(KeyFormatError):
        load_public_key(ec_pem)


def test_load_private_key_rejects_a_public_key(kontrol_pair: KeyPair) -> None:
    assert load_private_key(kontrol_pair.private).is_private
    with pytest.raises(KeyFormatError, match="got a public key"):
        load_private_key(kontrol_pair.public)


def test_fingerprint_is_stable_across_pem_forms(kontrol_pair: KeyPair) -> None:
    crypto_key = serialization.load_pem_public_key(kontrol_pair.public.encode())
    pkcs1 = crypto_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    ).decode()
    body = "".join(kontrol_pair.public.splitlines()[1:-1])
    rewrapped = "-----BEGIN PUBLIC KEY-----\n" + body + "\n-----END PUBLIC KEY-----\n\n"
    fingerprint = key_fingerprint(kontrol_pair.public)
    assert len(fingerprint) == 64
    assert key_fingerprint(pkcs1) == fingerprint
    assert key_fingerprint(rewrapped) == fingerprint
    assert kontrol_pair.fingerprint == fingerprint
    assert same_public_key(pkcs1, kontrol_pair.public)


def test_fingerprints_differ_between_keys(kontrol_pair: KeyPair, attacker_pair: KeyPair) -> None:
    assert kontrol_pair.fingerprint != attacker_pair.fingerprint
    assert not same_public_key(kontrol_pair.public, attacker_pair.public)
    assert not same_public_key(kontrol_pair.public, "not a key")


def test_key_pair_strips_pems_and_defaults_to_a_uuid_id(kontrol_pair: KeyPair) -> None:
    pair = KeyPair(public="\n" + kontrol_pair.public + "\n", private=kontrol_pair.private + "\n")
    assert pair.public == kontrol_pair.public
    assert pair.private == kontrol_pair.private
    assert uuid.UUID(pair.id).version == 4
    assert KeyPair(public=pair.public, private=pair.private, id="").id != ""
    assert "PRIVATE" not in repr(pair)
    pair.check()


def test_key_pair_check_rejects_halves_of_different_pairs(
    kontrol_pair: KeyPair, attacker_pair: KeyPair
) -> None:
    mixed = KeyPair(public=kontrol_pair.public, private=attacker_pair.private, id="mixed")
    with pytest.raises(KeyFormatError, match="does not belong"):
        mixed.check()
