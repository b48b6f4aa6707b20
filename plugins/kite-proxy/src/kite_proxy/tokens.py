"""The tunnel proxy's own tokens: RS256 JWTs ``{sub: kiteID, seq, iat, exp, nbf}``.

The proxy signs one per tunnel it asks a kite to open and verifies it when the kite dials
``/tunnel``; only the proxy ever reads them, so its key pair never leaves the process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

__all__ = ["TunnelTokenError", "TunnelTokens"]

#: Go's tunnel proxy: valid for an hour and a minute, from a minute ago (clock skew).
LIFETIME = 3600 + 60
SKEW = 60


class TunnelTokenError(ValueError):
    """A tunnel token that is forged, malformed, expired or not yet valid."""


@dataclass(frozen=True, slots=True)
class TunnelClaims:
    """What a valid tunnel token says: the kite and the tunnel's sequence number."""

    kite_id: str
    seq: int


class TunnelTokens:
    """Sign and verify tunnel tokens with one RSA key pair (PEM strings; generated if None)."""

    def __init__(self, private_key: str | bytes | None = None) -> None:
        if private_key is None:
            self._key = RSAKey.generate_key(2048)
        else:
            self._key = RSAKey.import_key(private_key)
            if not self._key.is_private:
                raise ValueError("the tunnel proxy needs a private key to sign tunnel tokens")

    @property
    def public_key(self) -> str:
        """The public half, PEM."""
        return self._key.as_pem(private=False).decode("ascii")

    def sign(self, kite_id: str, seq: int, *, now: float | None = None) -> str:
        """A token for tunnel ``seq`` of kite ``kite_id`` (``now`` for tests)."""
        issued = int(time.time() if now is None else now)
        claims = {
            "sub": kite_id,
            "seq": seq,
            "iat": issued,
            "exp": issued + LIFETIME,
            "nbf": issued - SKEW,
        }
        return jwt.encode({"alg": "RS256", "typ": "JWT"}, claims, self._key)

    def verify(self, token: str) -> TunnelClaims:
        """The claims of ``token``; :class:`TunnelTokenError` saying why it is refused."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=["RS256"])
            jwt.JWTClaimsRegistry(
                now=int(time.time()),
                exp={"essential": True},
                nbf={"essential": True},
                sub={"essential": True},
            ).validate(decoded.claims)
        except JoseError as exc:
            raise TunnelTokenError(f"tunnel token refused: {exc.error or exc}") from None
        except ValueError as exc:  # not a JWT at all
            raise TunnelTokenError(f"tunnel token refused: {exc}") from None
        seq = decoded.claims.get("seq")
        sub = decoded.claims.get("sub")
        if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(sub, str):
            raise TunnelTokenError("tunnel token refused: no kite id or sequence number")
        return TunnelClaims(sub, seq)
