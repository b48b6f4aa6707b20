"""Reading a JWT's claims without verifying it (sans-IO).

The kite side only needs to *read* its own kite.key (to fill the config) and the ``exp`` of the
tokens Kontrol hands out (to schedule renewal). Verifying signatures is the job of the kite a
token is presented to, done by the ``kite-auth-token`` plugin; the core stays free of crypto.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from kitecore.protocol import load_json

__all__ = ["MalformedTokenError", "token_expiry", "unverified_claims"]


class MalformedTokenError(ValueError):
    """The text is not a compact JWT whose claims are a JSON object."""


def unverified_claims(token: str) -> dict[str, Any]:
    """Return the claims of the compact JWT ``token`` WITHOUT checking its signature.

    Raises :class:`MalformedTokenError` unless ``token`` has three dot-separated segments and
    the middle one is base64url-encoded JSON holding an object.
    """
    if not isinstance(token, str):
        raise MalformedTokenError(f"a JWT must be text, not {type(token).__name__}")
    parts = token.strip().split(".")
    if len(parts) != 3 or not parts[1]:
        raise MalformedTokenError("not a compact JWT: expected 3 dot-separated segments")
    segment = parts[1]
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        claims = load_json(raw.decode("utf-8"))  # bounded depth: a peer's token is input
    except (binascii.Error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise MalformedTokenError(f"JWT claims are not base64url-encoded JSON: {exc}") from None
    if not isinstance(claims, dict):
        raise MalformedTokenError("JWT claims are not a JSON object")
    return claims


def token_expiry(token: str) -> int | None:
    """The ``exp`` claim of ``token`` in seconds since the epoch, or ``None`` when it has none.

    Unverified, like :func:`unverified_claims`: use it for scheduling only.
    """
    exp = unverified_claims(token).get("exp")
    if exp is None:
        return None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        raise MalformedTokenError(f"JWT claim 'exp' must be a number, not {exp!r}")
    return int(exp)
