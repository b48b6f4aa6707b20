"""Forging JWTs for the security tests, written without the library under test (a module of
its own: conftest is not importable)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

RS256 = {"alg": "RS256", "typ": "JWT"}


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: Any) -> str:
    """A JSON value encoded as a JWS segment."""
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def decode_segment(seg: str) -> Any:
    """Decode one JWS segment back to JSON."""
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def claims_of(token: str) -> dict[str, Any]:
    """The (unverified) claims of a compact token."""
    return decode_segment(token.split(".")[1])


def rsa_signed(header: dict[str, Any], claims: Any, private_pem: str) -> str:
    """``claims`` signed RSASSA-PKCS1-v1_5/SHA-256 with ``private_pem`` under ``header``."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


def hs256_signed(claims: Any, secret: bytes) -> str:
    """``claims`` signed HMAC-SHA256 with ``secret`` (the algorithm-confusion attack)."""
    signing_input = f"{segment({'alg': 'HS256', 'typ': 'JWT'})}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def unsigned(claims: Any) -> str:
    """``claims`` under ``alg: none`` with an empty signature."""
    return f"{segment({'alg': 'none', 'typ': 'JWT'})}.{segment(claims)}."


def resigned(token: str, private_pem: str, **changes: Any) -> str:
    """``token``'s claims, with ``changes`` (``None`` drops a claim), signed RS256 again."""
    claims = claims_of(token)
    claims.update(changes)
    return rsa_signed(RS256, {k: v for k, v in claims.items() if v is not None}, private_pem)


def tampered(token: str, **changes: Any) -> str:
    """``token`` with claims rewritten and its original header and signature kept."""
    header, payload, signature = token.split(".")
    claims = decode_segment(payload)
    claims.update(changes)
    return f"{header}.{segment(claims)}.{signature}"
