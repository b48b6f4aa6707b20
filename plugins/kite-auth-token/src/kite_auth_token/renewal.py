"""Client-side token renewal schedule (protocol.md §6.4), as pure functions.

A client holding a Kontrol token renews it 30 s before its ``exp``; a failed renewal is retried
every 10 s, except when Kontrol says the kite is gone (then the client must dial again anyway).
A call failing with "token is expired" triggers an immediate renewal. The I/O loop that acts on
these answers lives with the client.
"""

from __future__ import annotations

import time

from .compact import StandardClaims, decode_unverified
from .errors import TokenError

__all__ = [
    "RENEW_BEFORE",
    "RETRY_INTERVAL",
    "is_token_expired_error",
    "renew_at",
    "renew_delay",
    "retry_delay",
    "token_expiry",
]

#: Seconds before ``exp`` at which a token is renewed (Go ``renewBefore``).
RENEW_BEFORE = 30.0
#: Seconds between attempts after a failed renewal (Go ``retryInterval``).
RETRY_INTERVAL = 10.0

_KITE_GONE = ("no kites found", "no kites availabile", "no kites available")


def token_expiry(token: str) -> int:
    """Return the ``exp`` of ``token`` (seconds since the epoch) WITHOUT verifying it.

    The client only schedules with it; the kite the token is presented to does the verifying.
    Raises :class:`TokenError` if the token is malformed or has no ``exp``.
    """
    claims = StandardClaims.from_mapping(decode_unverified(token).claims)
    if claims.expires_at is None:
        raise TokenError("token has no expiry")
    return claims.expires_at


def renew_at(token: str) -> float:
    """When to renew ``token``: ``RENEW_BEFORE`` seconds before its ``exp``."""
    return token_expiry(token) - RENEW_BEFORE


def renew_delay(token: str, *, now: float | None = None) -> float:
    """Seconds from ``now`` until ``token`` should be renewed (0 if that moment has passed)."""
    reference = time.time() if now is None else now
    return max(0.0, renew_at(token) - reference)


def is_token_expired_error(message: str) -> bool:
    """Tell whether an ``authenticationError`` message asks the caller to renew its token."""
    return "token is expired" in message


def retry_delay(error_message: str) -> float | None:
    """After a failed renewal: seconds until the next try, or ``None`` to stop renewing.

    Renewal stops when Kontrol no longer knows the kite ("no kites found"): the client has to dial
    again, which fetches a new token anyway.
    """
    if any(text in error_message for text in _KITE_GONE):
        return None
    return RETRY_INTERVAL
