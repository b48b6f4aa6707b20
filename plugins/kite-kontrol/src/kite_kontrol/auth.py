"""Authenticators for Kontrol's own methods (protocol.md §6.2), built on kite_auth_token.

``kiteKey``: the kite.key must be signed by a key pair in Kontrol's storage, active **or
retired** (a Go Kontrol's ``IsValid`` check). ``token``: a token Kontrol issued for itself,
checked against its current pair and its own identity as audience. Verified kite.keys are cached
for ``verify_ttl`` seconds, trust decisions by the :class:`~kite_kontrol.keyring.Keyring`.

The kite's core prefixes the auth type to the reasons given here (``kiteKey: kontrol key is
not trusted``), as Go does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from kitecore.protocol.errors import AuthenticationError
from kitecore.protocol.identity import KiteIdentity
from kitecore.request import Request
from kitecore.storage import KeyPairRecord, StorageError

from ._tokenlib import kite_auth_token
from .keyring import Keyring

__all__ = ["KITE_KEY_CONTEXT", "KiteKeyAuthenticator", "TokenAuthenticator", "VerifiedKiteKey"]

logger = logging.getLogger(__name__)

#: ``request.context`` key under which the kiteKey authenticator leaves a :class:`VerifiedKiteKey`.
KITE_KEY_CONTEXT = "kontrol.kite_key"

_MAX_CACHED = 10_000


@dataclass(frozen=True, slots=True)
class VerifiedKiteKey:
    """A kite.key that passed verification, with the stored pair that signed it."""

    token: str
    claims: kite_auth_token.KiteKeyClaims
    pair: KeyPairRecord

    @property
    def username(self) -> str:
        return self.claims.subject


class KiteKeyAuthenticator:
    """Verifies kite.keys against Kontrol's key storage."""

    def __init__(
        self,
        keyring: Keyring,
        *,
        verify_ttl: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._keyring = keyring
        self._verify_ttl = verify_ttl
        self._clock = clock
        self._verified: dict[str, tuple[VerifiedKiteKey, float]] = {}

    async def verify(self, key: str) -> VerifiedKiteKey:
        """Verify ``key`` (a kite.key JWT); raise ``TokenError`` with Go's reasons."""
        now = self._clock()
        hit = self._verified.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        kontrol_key = kite_auth_token.unverified_kontrol_key(key)
        try:
            pair = await self._keyring.trusted_pair(kontrol_key)
        except StorageError as exc:
            logger.error("key storage lookup failed: %s", exc)
            raise kite_auth_token.TokenError("cannot check the kontrol key now") from exc
        claims = kite_auth_token.verify_kite_key(key, trust=lambda _pem: pair is not None)
        assert pair is not None  # verify_kite_key refused untrusted keys
        verified = VerifiedKiteKey(key, claims, pair)
        if self._verify_ttl > 0:
            if len(self._verified) >= _MAX_CACHED:
                self._verified.clear()
            self._verified[key] = (verified, now + self._verify_ttl)
        return verified

    def clear(self) -> None:
        """Forget the verified kite.keys (after a key rotation)."""
        self._verified.clear()

    async def authenticate(self, request: Request) -> str:
        """The kite.key's ``sub``; the verification is left in ``request.context``."""
        key = request.auth.key if request.auth is not None else ""
        try:
            verified = await self.verify(key)
        except kite_auth_token.TokenError as exc:
            raise AuthenticationError(exc.reason) from None
        request.context[KITE_KEY_CONTEXT] = verified
        return verified.username


class TokenAuthenticator:
    """Verifies tokens Kontrol issued for calling Kontrol itself."""

    def __init__(
        self, keyring: Keyring, issuer: Callable[[], str], identity: Callable[[], KiteIdentity]
    ) -> None:
        self._keyring = keyring
        self._issuer = issuer
        self._identity = identity

    async def authenticate(self, request: Request) -> str:
        """The token's ``sub`` once signature, issuer, times and audience check out."""
        key = request.auth.key if request.auth is not None else ""
        try:
            claims = kite_auth_token.verify_token(
                key,
                public_key=self._keyring.current.public,
                issuer=self._issuer(),
                kite=self._identity(),
            )
        except kite_auth_token.TokenError as exc:
            raise AuthenticationError(exc.reason) from None
        return claims.subject
