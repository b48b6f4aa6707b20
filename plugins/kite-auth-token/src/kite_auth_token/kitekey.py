"""kite.key JWTs (protocol.md §6.1, §6.2 "kiteKey"): creation by Kontrol and verification.

A kite.key is a long-lived credential Kontrol issues to a user's machine. It is self-describing:
it carries Kontrol's public key in its ``kontrolKey`` claim and is signed by the matching private
key. Verifying it therefore takes two steps: the signature must match the embedded key, and the
embedded key must be one the verifier trusts (by default its own Kontrol key).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .compact import (
    StandardClaims,
    check_algorithm,
    check_times,
    current_time,
    decode_unverified,
    optional_string_claim,
    sign,
    signature_is_valid,
)
from .errors import KeyFormatError, TokenError
from .keys import check_key_pair, load_public_key, same_public_key
from .tokens import TOKEN_LEEWAY

__all__ = [
    "KiteKeyClaims",
    "TrustPolicy",
    "create_kite_key",
    "unverified_kontrol_key",
    "verify_kite_key",
]

logger = logging.getLogger(__name__)

#: Either the trusted Kontrol public key PEM, or a predicate telling whether a PEM is trusted.
TrustPolicy = str | Callable[[str], bool]


@dataclass(frozen=True)
class KiteKeyClaims(StandardClaims):
    """The claims of a verified kite.key.

    ``issuer`` is Kontrol's username (Go ``Config.KontrolUser``), ``subject`` the owner
    (``Config.Username``), ``id`` the ``jti`` (``Config.Id``).
    """

    kontrol_url: str = ""
    kontrol_key: str = ""

    @property
    def username(self) -> str:
        """The authenticated owner of the key (the ``sub`` claim)."""
        return self.subject

    @classmethod
    def from_kite_key_mapping(cls, raw: Mapping[str, Any]) -> KiteKeyClaims:
        """Type-check a kite.key claim set; raise :class:`TokenError` if malformed."""
        standard = StandardClaims.from_mapping(raw)
        return cls(
            **vars(standard),
            kontrol_url=optional_string_claim(raw, "kontrolURL"),
            kontrol_key=optional_string_claim(raw, "kontrolKey"),
        )


def create_kite_key(
    *,
    username: str,
    issuer: str,
    kontrol_url: str,
    public_key: str,
    private_key: str,
    jti: str | None = None,
    leeway: float = TOKEN_LEEWAY,
    now: float | None = None,
) -> str:
    """Create a kite.key for ``username`` as Kontrol's ``registerUser`` does; return the JWT.

    Claims: ``iss`` (Kontrol's username), ``sub`` (``username``), ``iat = now - leeway``, ``jti``
    (a random UUID unless given), ``kontrolURL`` and ``kontrolKey`` (the stripped public PEM).
    No ``exp``, no ``aud``. Raises ``ValueError`` for empty names or keys that are not one pair.
    """
    for label, value in (("username", username), ("issuer", issuer)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"kite.key {label} must be a non-empty string")
    check_key_pair(public_key, private_key)
    start = time.time() if now is None else now
    claims = {
        "iss": issuer,
        "sub": username,
        "iat": current_time(start - leeway),
        "jti": jti or str(uuid.uuid4()),
        "kontrolURL": kontrol_url,
        "kontrolKey": public_key.strip(),
    }
    logger.debug("created kite.key for %s (issuer %s)", username, issuer)
    return sign(claims, private_key)


def verify_kite_key(token: str, *, trust: TrustPolicy, now: float | None = None) -> KiteKeyClaims:
    """Verify a kite.key and return its claims; raise :class:`TokenError` with Go's reasons.

    ``trust`` is the verifier's Kontrol public key PEM (Go's default ``selfVerify``; compared as
    keys, so PEM wrapping does not matter) or a predicate over the embedded PEM (Kontrol: "is this
    one of my key pairs?"). For an asynchronous lookup, resolve it first with
    :func:`unverified_kontrol_key` and pass the answer as a predicate.

    Reasons: ``malformed token: ...``, ``invalid signing method`` (not RS256),
    ``no kontrol key found`` (empty ``kontrolKey``), ``invalid kontrol key: ...``,
    ``kontrol key is not trusted``, ``Invalid signature in kite key``, ``token is expired`` /
    ``Token used before issued`` / ``token is not valid yet`` (only if such claims are present),
    ``token has no username`` (empty ``sub``).
    """
    try:
        claims = _verify(token, trust, current_time(now))
    except TokenError as err:
        logger.debug("kite.key rejected: %s", err)
        raise
    return claims


def unverified_kontrol_key(token: str) -> str:
    """Return the ``kontrolKey`` claim of a kite.key WITHOUT verifying anything.

    Only for looking the key up (e.g. in Kontrol's key-pair storage) before calling
    :func:`verify_kite_key`, or for display (``kite showkey``).
    """
    claims = KiteKeyClaims.from_kite_key_mapping(decode_unverified(token).claims)
    if not claims.kontrol_key:
        raise TokenError("no kontrol key found")
    return claims.kontrol_key


def _verify(token: str, trust: TrustPolicy, now: int) -> KiteKeyClaims:
    unverified = decode_unverified(token)
    claims = KiteKeyClaims.from_kite_key_mapping(unverified.claims)
    check_algorithm(unverified.header)
    if not claims.kontrol_key:
        raise TokenError("no kontrol key found")
    try:
        load_public_key(claims.kontrol_key)
    except KeyFormatError as err:
        raise TokenError(f"invalid kontrol key: {err}") from err
    if not _is_trusted(claims.kontrol_key, trust):
        raise TokenError("kontrol key is not trusted")
    if not signature_is_valid(token, claims.kontrol_key):
        raise TokenError("Invalid signature in kite key")
    check_times(claims, now)
    if not claims.subject:
        raise TokenError("token has no username")
    return claims


def _is_trusted(kontrol_key: str, trust: TrustPolicy) -> bool:
    if isinstance(trust, str):
        return same_public_key(kontrol_key, trust)
    return bool(trust(kontrol_key))
