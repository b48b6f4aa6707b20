"""Short-lived access tokens (protocol.md §6.2 "token", §6.3): minting and verification.

Kontrol signs a token for a requester (``sub``) and a target audience (``aud``) with the key pair
the target kite registered with; the target kite verifies it with its Kontrol public key.

Verification mirrors a Go kite's ``AuthenticateFromToken`` in order and wording, with two
deliberate tightenings: only RS256 is accepted (Go accepts any RSA algorithm), and ``exp`` is
required (jwt-go treats a missing ``exp`` as "never expires"; Kontrol always sets one).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .audience import KiteIdentity, check_audience
from .compact import (
    StandardClaims,
    check_algorithm,
    check_times,
    current_time,
    decode_unverified,
    sign,
    signature_is_valid,
)
from .errors import TokenError
from .keys import load_public_key

__all__ = ["TOKEN_LEEWAY", "TOKEN_TTL", "TokenClaims", "mint_token", "verify_token"]

logger = logging.getLogger(__name__)

#: How long a Kontrol token is valid (Go ``kontrol.TokenTTL``), in seconds.
TOKEN_TTL = 48 * 3600.0
#: Clock-skew allowance added around a token's validity (Go ``kontrol.TokenLeeway``), in seconds.
TOKEN_LEEWAY = 5 * 60.0


@dataclass(frozen=True)
class TokenClaims(StandardClaims):
    """The claims of a verified token; ``subject`` is the authenticated username."""

    @property
    def username(self) -> str:
        """The authenticated requester (the ``sub`` claim)."""
        return self.subject


def mint_token(
    *,
    issuer: str,
    subject: str,
    audience: str,
    private_key: str,
    ttl: float = TOKEN_TTL,
    leeway: float = TOKEN_LEEWAY,
    not_before: bool = True,
    now: float | None = None,
    jti: str | None = None,
) -> str:
    """Sign a token as Kontrol's ``generateToken`` does and return the compact JWT.

    Claims: ``iss`` (Kontrol's username), ``sub`` (the requester), ``aud`` (always one string,
    never a list: Go kites cannot parse a list), ``exp = now + ttl + leeway``,
    ``iat = now - leeway``, ``nbf = now - leeway`` (omitted when ``not_before`` is false, Go's
    ``TokenNoNBF``) and a random UUID ``jti``. ``private_key`` is an RSA private key PEM.
    """
    for label, value in (("issuer", issuer), ("subject", subject), ("audience", audience)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"token {label} must be a non-empty string")
    if ttl <= 0 or leeway < 0:
        raise ValueError("token ttl must be positive and leeway not negative")
    start = time.time() if now is None else now
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": current_time(start + ttl + leeway),
        "iat": current_time(start - leeway),
        "jti": jti or str(uuid.uuid4()),
    }
    if not_before:
        claims["nbf"] = current_time(start - leeway)
    token = sign(claims, private_key)
    logger.debug("minted token for sub=%s aud=%s exp=%d", subject, audience, claims["exp"])
    return token


def verify_token(
    token: str,
    *,
    public_key: str,
    issuer: str,
    kite: KiteIdentity | None = None,
    now: float | None = None,
) -> TokenClaims:
    """Verify a token presented to a kite and return its claims; raise :class:`TokenError`.

    ``public_key`` is the verifier's Kontrol public key PEM and ``issuer`` its Kontrol username.
    If ``kite`` is given, the audience must admit it (§6.2; see
    :func:`~kite_auth_token.audience.check_audience`). Checks, in Go's order, with Go's reasons:

    * malformed token or claim types -> ``malformed token: ...``;
    * ``alg`` other than RS256 -> ``invalid signing method``;
    * ``iss`` not ``issuer`` -> ``issuer is not trusted: <iss>``;
    * bad signature (wrong key, tampered content) -> ``token is expired``, on purpose: it tells
      the client that Kontrol's keys may have rotated and that it should fetch a new token;
    * ``exp``/``iat``/``nbf`` against ``now`` without leeway -> ``token is expired`` /
      ``Token used before issued`` / ``token is not valid yet``;
    * no ``exp`` -> ``token has no expiry``;
    * empty ``aud`` -> ``token has no audience``; empty ``sub`` -> ``token has no username``.

    A :class:`~kite_auth_token.errors.KeyFormatError` (``ValueError``) means the verifier's own
    key is unusable; an empty ``issuer`` is refused with ``ValueError``.
    """
    if not issuer:
        raise ValueError("the expected token issuer (Kontrol username) must not be empty")
    load_public_key(public_key)  # a bad verifier key is a configuration error, reported first
    try:
        claims = _verify(token, public_key, issuer, kite, current_time(now))
    except TokenError as err:
        logger.debug("token rejected: %s", err)
        raise
    return claims


def _verify(
    token: str, public_key: str, issuer: str, kite: KiteIdentity | None, now: int
) -> TokenClaims:
    unverified = decode_unverified(token)
    claims = TokenClaims.from_mapping(unverified.claims)
    check_algorithm(unverified.header)
    if claims.issuer != issuer:
        raise TokenError(f"issuer is not trusted: {claims.issuer}")
    if not signature_is_valid(token, public_key):
        raise TokenError("token is expired")
    check_times(claims, now)
    if claims.expires_at is None:
        raise TokenError("token has no expiry")
    if not claims.audience:
        raise TokenError("token has no audience")
    if not claims.subject:
        raise TokenError("token has no username")
    if kite is not None:
        check_audience(claims.audience, kite.username, kite.environment, kite.name)
    return claims
