"""Compact JWT plumbing shared by kite.key and tokens: strict decoding, RS256 signing/verification.

Only RS256 is ever signed or accepted (an allow-list, checked here and again by joserfc), so
``alg: none``, HMAC with the RSA public key as secret and other algorithm swaps cannot pass.

Claims are typed the way Go's jwt-go v3 ``StandardClaims`` types them (strings, ``int64`` seconds,
``aud`` a single string): a token a Go kite could not unmarshal is malformed here too. As in jwt-go,
``null`` and ``0`` time claims count as absent.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from joserfc import jws, jwt
from joserfc.errors import BadSignatureError, JoseError

from kitecore.protocol import check_json_depth

from .errors import TokenError
from .keys import load_private_key, load_public_key

__all__ = [
    "ALGORITHM",
    "StandardClaims",
    "UnverifiedToken",
    "check_algorithm",
    "check_times",
    "current_time",
    "decode_unverified",
    "optional_string_claim",
    "sign",
    "signature_is_valid",
]

logger = logging.getLogger(__name__)

#: The one signing algorithm kite tokens and kite.keys use.
ALGORITHM = "RS256"
_ALLOWED = [ALGORITHM]

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")

_Claims = TypeVar("_Claims", bound="StandardClaims")


@dataclass(frozen=True)
class StandardClaims:
    """The registered JWT claims, typed as jwt-go v3 ``StandardClaims`` (empty string = absent)."""

    issuer: str = ""
    subject: str = ""
    audience: str = ""
    id: str = ""
    expires_at: int | None = None
    issued_at: int | None = None
    not_before: int | None = None

    @classmethod
    def from_mapping(cls: type[_Claims], raw: Mapping[str, Any]) -> _Claims:
        """Type-check the registered claims of ``raw``; raise :class:`TokenError` if malformed."""
        return cls(
            issuer=optional_string_claim(raw, "iss"),
            subject=optional_string_claim(raw, "sub"),
            audience=optional_string_claim(raw, "aud"),
            id=optional_string_claim(raw, "jti"),
            expires_at=_time_claim(raw, "exp"),
            issued_at=_time_claim(raw, "iat"),
            not_before=_time_claim(raw, "nbf"),
        )


@dataclass(frozen=True)
class UnverifiedToken:
    """A compact JWT split and decoded, signature NOT checked: never trust its content alone."""

    header: Mapping[str, Any]
    claims: Mapping[str, Any]


def decode_unverified(token: str) -> UnverifiedToken:
    """Split a compact JWT and decode header and claims strictly; the signature is not checked.

    Raises :class:`TokenError` (``malformed token: ...``) for anything that is not three base64url
    segments holding JSON objects.
    """
    if not isinstance(token, str) or not token:
        raise TokenError("malformed token: empty or not a string")
    parts = token.split(".")
    if len(parts) != 3:
        raise TokenError("token contains an invalid number of segments")
    header = _json_segment(parts[0], "header")
    claims = _json_segment(parts[1], "claims")
    return UnverifiedToken(header=header, claims=claims)


def check_algorithm(header: Mapping[str, Any]) -> None:
    """Raise :class:`TokenError` ("invalid signing method") unless the header says RS256."""
    if header.get("alg") != ALGORITHM:
        raise TokenError("invalid signing method")


def sign(claims: Mapping[str, Any], private_key_pem: str) -> str:
    """Sign ``claims`` with RS256 under the header ``{"alg":"RS256","typ":"JWT"}`` (jwt-go's)."""
    key = load_private_key(private_key_pem)
    header = {"alg": ALGORITHM, "typ": "JWT"}
    return jwt.encode(header, dict(claims), key, algorithms=_ALLOWED, default_type=None)


def signature_is_valid(token: str, public_key_pem: str) -> bool:
    """Check the RS256 signature of ``token`` against ``public_key_pem``.

    Any other ``alg`` is refused by joserfc's allow-list as well (defence in depth behind
    :func:`check_algorithm`). A :class:`~kite_auth_token.errors.KeyFormatError` propagates: an
    unreadable verification key is the verifier's problem, not the token's.
    """
    key = load_public_key(public_key_pem)
    try:
        jws.deserialize_compact(token, key, algorithms=_ALLOWED)
    except BadSignatureError:
        return False
    except JoseError as err:
        logger.debug("signature check refused the token: %s", err)
        return False
    return True


def check_times(claims: StandardClaims, now: int) -> None:
    """Validate exp, iat and nbf against ``now`` with no leeway, as jwt-go v3 ``Valid()`` does.

    jwt-go checks all three and reports the last failure, so the order here is exp, iat, nbf.
    """
    reason = None
    if claims.expires_at is not None and now > claims.expires_at:
        reason = "token is expired"
    if claims.issued_at is not None and now < claims.issued_at:
        reason = "Token used before issued"
    if claims.not_before is not None and now < claims.not_before:
        reason = "token is not valid yet"
    if reason is not None:
        raise TokenError(reason)


def current_time(now: float | None = None) -> int:
    """Whole seconds since the epoch (``now`` if given, for tests), truncated as Go's ``Unix()``."""
    return math.floor(time.time() if now is None else now)


def optional_string_claim(raw: Mapping[str, Any], name: str) -> str:
    """Return claim ``name`` as a string ("" if absent or null); non-strings are malformed."""
    value = raw.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TokenError(f"malformed token: claim {name!r} must be a string")
    return value


def _time_claim(raw: Mapping[str, Any], name: str) -> int | None:
    value = raw.get(name)
    # bool is an int subclass in Python but not a number in JSON.
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise TokenError(f"malformed token: claim {name!r} must be an integer")
    return value or None


def _json_segment(segment: str, what: str) -> dict[str, Any]:
    if not _BASE64URL.fullmatch(segment):
        raise TokenError(f"malformed token: {what} is not base64url-encoded")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        text = data.decode("utf-8")
        check_json_depth(text)  # a deeply nested segment is malformed, not a RecursionError
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError as err:  # binascii.Error, UnicodeDecodeError, JSONDepthError too
        raise TokenError(f"malformed token: {what} is not base64url-encoded JSON") from err
    if not isinstance(value, dict):
        raise TokenError(f"malformed token: {what} is not a JSON object")
    return value


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")
