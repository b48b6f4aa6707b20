"""Hand-made JWTs for attack tests: written without the library under test."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

#: A fixed "now" (2023-11-14T22:13:20Z) so time checks are exact.
NOW = 1_700_000_000


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def segment(obj: Any) -> str:
    """A JSON value encoded as a JWS segment."""
    return b64url(json.dumps(obj, separators=(",", ":")).encode("utf-8"))


def decode_segment(seg: str) -> Any:
    """Decode one JWS segment back to JSON."""
    return json.loads(base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4)))


def unsigned(header: dict[str, Any], claims: Any, signature: str = "") -> str:
    """A compact token with the given (possibly empty or bogus) signature segment."""
    return f"{segment(header)}.{segment(claims)}.{signature}"


def rsa_signed(
    header: dict[str, Any], claims: Any, private_pem: str, digest: str = "sha256"
) -> str:
    """A compact token signed RSASSA-PKCS1-v1_5 with ``private_pem`` over whatever header given."""
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    algorithm = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384()}[digest]
    signing_input = f"{segment(header)}.{segment(claims)}"
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), algorithm)
    return f"{signing_input}.{b64url(signature)}"


def hs256_signed(header: dict[str, Any], claims: Any, secret: bytes) -> str:
    """A compact token signed HMAC-SHA256 with ``secret`` (the algorithm-confusion attack)."""
    signing_input = f"{segment(header)}.{segment(claims)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def with_claims(token: str, **changes: Any) -> str:
    """Rewrite claims of ``token`` keeping its header and its original signature."""
    header, payload, signature = token.split(".")
    claims = decode_segment(payload)
    claims.update(changes)
    return f"{header}.{segment(claims)}.{signature}"


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode header and claims of a compact token."""
    header, payload, _ = token.split(".")
    return decode_segment(header), decode_segment(payload)
