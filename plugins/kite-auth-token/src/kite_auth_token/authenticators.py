"""The ``kiteKey`` and ``token`` authenticators a kite runs on incoming requests (protocol.md §6.2).

Each is built per kite and reads the kite's config on every call, so a Kontrol key rotation
applied to ``config.kontrol_key`` takes effect at once. Both remember verified credentials for a
while (kite.keys for ``config.verify_ttl``; tokens until they expire): an RS256 check costs tens
of microseconds, a dictionary lookup nothing. Cached entries are keyed by the exact credential
text *and* the trusted key, and time claims are re-checked on every use.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from kitecore import AuthenticationError

from .compact import check_times, current_time
from .errors import KeyFormatError, TokenError
from .kitekey import KiteKeyClaims, unverified_kontrol_key, verify_kite_key
from .tokens import TokenClaims, verify_token

__all__ = ["KiteKeyAuthenticator", "TokenAuthenticator", "TrustCheck"]

logger = logging.getLogger(__name__)

#: ``check(public_pem) -> bool`` (or an awaitable of it): is this Kontrol key trusted?
TrustCheck = Callable[[str], bool | Awaitable[bool]]

#: Seconds a verified kite.key is remembered when ``config.verify_ttl`` is 0 (Go's default).
DEFAULT_VERIFY_TTL = 300.0
#: How many verified credentials each authenticator remembers.
CACHE_SIZE = 4096


class _Cache:
    """A small bounded mapping with per-entry deadlines on the monotonic clock."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._entries: dict[tuple[str, ...], tuple[float, Any]] = {}

    def get(self, key: tuple[str, ...]) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        deadline, value = entry
        if time.monotonic() >= deadline:
            del self._entries[key]
            return None
        return value

    def put(self, key: tuple[str, ...], value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        if len(self._entries) >= self._size:
            self._entries.clear()  # rare: simpler and safer than an LRU for attack traffic
        self._entries[key] = (time.monotonic() + ttl, value)

    def clear(self) -> None:
        self._entries.clear()


class KiteKeyAuthenticator:
    """``kiteKey``: the caller presents its kite.key.

    The key must be signed by the Kontrol key embedded in it, and that key must be trusted: by
    default it must be this kite's ``config.kontrol_key`` (Go's ``selfVerify``). Kontrol passes
    ``trust`` instead (any key in its key-pair storage; may be async). Accepted keys are
    remembered for ``config.verify_ttl`` seconds (a negative TTL disables the cache).
    """

    def __init__(self, kite: Any, trust: TrustCheck | None = None) -> None:
        self.kite = kite
        self.trust = trust
        self._cache = _Cache()

    async def authenticate(self, request: Any) -> str:
        """Return the kite.key's ``sub``; raise :class:`AuthenticationError` with the reason."""
        key = request.auth.key
        config = self.kite.config
        cache_key = (key, config.kontrol_key)
        claims: KiteKeyClaims | None = self._cache.get(cache_key)
        if claims is None:
            claims = await self._verify(key, config.kontrol_key)
            # Go: a VerifyTTL of 0 means the default (5 min), a negative one no cache
            self._cache.put(cache_key, claims, config.verify_ttl or DEFAULT_VERIFY_TTL)
        else:
            _recheck_times(claims)
        return claims.subject

    async def _verify(self, key: str, own_kontrol_key: str) -> KiteKeyClaims:
        try:
            if self.trust is None:
                return verify_kite_key(key, trust=own_kontrol_key)
            trusted = self.trust(unverified_kontrol_key(key))
            if inspect.isawaitable(trusted):
                trusted = await trusted
            return verify_kite_key(key, trust=lambda _pem: bool(trusted))
        except TokenError as exc:
            raise AuthenticationError(exc.reason) from None


class TokenAuthenticator:
    """``token``: the caller presents a short-lived RS256 token from Kontrol.

    The issuer must be this kite's ``config.kontrol_user``, the signature must verify with
    ``config.kontrol_key`` (a bad one reads "token is expired" so the caller renews), and the
    audience must admit this kite's username, environment and name.
    """

    def __init__(self, kite: Any) -> None:
        self.kite = kite
        self._cache = _Cache()

    async def authenticate(self, request: Any) -> str:
        """Return the token's ``sub``; raise :class:`AuthenticationError` with the reason."""
        token = request.auth.key
        kite = self.kite
        config = kite.config
        if not config.kontrol_key or not config.kontrol_user:
            raise AuthenticationError(
                "this kite has no Kontrol key or Kontrol user to verify tokens with"
            )
        cache_key = (
            token,
            config.kontrol_key,
            config.kontrol_user,
            config.username,
            config.environment,
            kite.name,
        )
        claims: TokenClaims | None = self._cache.get(cache_key)
        if claims is not None:
            _recheck_times(claims)
            return claims.subject
        try:
            claims = verify_token(
                token,
                public_key=config.kontrol_key,
                issuer=config.kontrol_user,
                kite=kite.identity,
            )
        except TokenError as exc:
            raise AuthenticationError(exc.reason) from None
        except KeyFormatError as exc:
            logger.error("%r: config.kontrol_key is not a usable RSA public key: %s", kite, exc)
            raise AuthenticationError(f"this kite's Kontrol key is unusable: {exc}") from None
        assert claims.expires_at is not None  # verify_token refuses tokens without exp
        self._cache.put(cache_key, claims, claims.expires_at - time.time())
        return claims.subject


def _recheck_times(claims: Any) -> None:
    try:
        check_times(claims, current_time())
    except TokenError as exc:
        raise AuthenticationError(exc.reason) from None
