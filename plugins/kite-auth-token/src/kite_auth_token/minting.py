"""Kontrol-side token minting with a cache (protocol.md §6.3).

Kontrol answers repeated getToken/getKites calls for the same (audience, requester, issuer, key
pair) with the same token until ``ttl - leeway`` has passed since it was signed; ``force=True``
signs a fresh one (and caches that instead). Signing RS256 costs about a millisecond, so the
cache matters for busy registries.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from .keys import KeyPair
from .tokens import TOKEN_LEEWAY, TOKEN_TTL, mint_token

__all__ = ["TokenMinter"]

logger = logging.getLogger(__name__)


class _CacheKey(NamedTuple):
    audience: str
    subject: str
    issuer: str
    key_id: str


class _Cached(NamedTuple):
    token: str
    valid_until: float


class TokenMinter:
    """Mint tokens for Kontrol, reusing a cached token while it has enough life left.

    ``clock`` gives wall-clock seconds (injectable for tests); it drives both the token claims and
    the cache expiry. At most ``max_entries`` tokens are kept (oldest dropped first).
    """

    def __init__(
        self,
        *,
        ttl: float = TOKEN_TTL,
        leeway: float = TOKEN_LEEWAY,
        not_before: bool = True,
        clock: Callable[[], float] = time.time,
        max_entries: int = 10_000,
    ) -> None:
        if ttl <= 0 or leeway < 0 or max_entries < 1:
            raise ValueError("ttl must be positive, leeway not negative, max_entries at least 1")
        self._ttl = ttl
        self._leeway = leeway
        self._not_before = not_before
        self._clock = clock
        self._max_entries = max_entries
        self._cache: OrderedDict[_CacheKey, _Cached] = OrderedDict()

    def token(
        self,
        *,
        audience: str,
        subject: str,
        issuer: str,
        key_pair: KeyPair,
        force: bool = False,
    ) -> str:
        """Return a token for ``subject`` to call kites in ``audience``, signed with ``key_pair``.

        A cached token is returned unless ``force`` is true or it is older than ``ttl - leeway``.
        """
        key = _CacheKey(audience, subject, issuer, key_pair.id)
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and not force and now < cached.valid_until:
            return cached.token
        token = mint_token(
            issuer=issuer,
            subject=subject,
            audience=audience,
            private_key=key_pair.private,
            ttl=self._ttl,
            leeway=self._leeway,
            not_before=self._not_before,
            now=now,
        )
        self._store(key, _Cached(token, now + self._ttl - self._leeway), now)
        return token

    def clear(self) -> None:
        """Forget every cached token (e.g. after a key pair was deleted)."""
        self._cache.clear()

    def __len__(self) -> int:
        return len(self._cache)

    def _store(self, key: _CacheKey, entry: _Cached, now: float) -> None:
        self._cache.pop(key, None)
        if entry.valid_until > now:
            self._cache[key] = entry
        if len(self._cache) > self._max_entries:
            for stale in [k for k, v in self._cache.items() if v.valid_until <= now]:
                del self._cache[stale]
        while len(self._cache) > self._max_entries:
            dropped, _ = self._cache.popitem(last=False)
            logger.debug("token cache full, dropped the oldest entry for %s", dropped.subject)
