"""Kontrol's view of its key pairs: the current signing pair and cached storage lookups.

The current pair signs new kite.keys, Kontrol's own tokens and the re-signed kite.keys of kites
whose pair was retired. Every pair in storage, active or retired, is *trusted*: a kite.key signed
by a retired pair still authenticates (that is how Kontrol knows whom to hand a re-signed key).
Lookups are cached for ``verify_ttl`` seconds (unknown keys for ``negative_verify_ttl``), so a
busy Kontrol does not ask storage on every request; :meth:`Keyring.rotate` clears the caches.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from kitecore.storage import KeyDeletedError, KeyNotFoundError, KeyPairRecord, Storage

from ._tokenlib import kite_auth_token
from .settings import KontrolSettings

__all__ = ["Keyring"]

logger = logging.getLogger(__name__)

_MAX_CACHED = 10_000


class Keyring:
    """The current key pair plus cached trust and id lookups against a :class:`Storage`."""

    def __init__(
        self,
        storage: Storage,
        current: KeyPairRecord,
        settings: KontrolSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.current = current
        self._settings = settings
        self._clock = clock
        self._by_public: dict[str, tuple[KeyPairRecord | None, float]] = {}
        self._by_id: dict[str, tuple[KeyPairRecord | None, float]] = {}
        self._signing: dict[str, kite_auth_token.KeyPair] = {}

    async def setup(self, retired: Sequence[KeyPairRecord] = ()) -> None:
        """Store the current pair (and re-store ``retired`` ones as retired) if missing."""
        for pair in retired:
            if pair.id == self.current.id:
                continue
            await self.storage.add_key(pair)
            await self.storage.delete_key(pair.id)
        await self.storage.add_key(self.current)
        try:
            await self.storage.get_key_by_id(self.current.id)
        except KeyDeletedError:
            logger.warning(
                "Kontrol's current key pair %s is retired in storage; rotate to a new pair",
                self.current.id,
            )

    def signing_pair(self, record: KeyPairRecord | None = None) -> kite_auth_token.KeyPair:
        """``record`` (default: the current pair) as the plugin's :class:`KeyPair` for signing."""
        record = record or self.current
        pair = self._signing.get(record.id)
        if pair is None:
            pair = kite_auth_token.KeyPair(
                public=record.public, private=record.private, id=record.id
            )
            if len(self._signing) >= _MAX_CACHED:
                self._signing.clear()
            self._signing[record.id] = pair
        return pair

    async def trusted_pair(self, public: str) -> KeyPairRecord | None:
        """The stored pair (active or retired) whose public key is ``public``; ``None`` if none."""
        public = public.strip()
        if public == self.current.public:
            return self.current
        return await self._cached(self._by_public, public, self.storage.get_key_by_public)

    async def pair_for_id(self, key_id: str) -> KeyPairRecord:
        """The pair to sign tokens for a kite registered with ``key_id``.

        Its own pair while active; the current pair once it is retired (the kite got a re-signed
        kite.key when it registered again) or when it is unknown (logged).
        """
        if key_id == self.current.id:
            return self.current
        record = await self._cached(self._by_id, key_id, self.storage.get_key_by_id)
        if record is None:
            logger.warning("key pair %s is not in storage; signing with the current pair", key_id)
            return self.current
        return self.current if record.retired else record

    async def rotate(self, new: KeyPairRecord) -> KeyPairRecord:
        """Add ``new``, retire the current pair, make ``new`` current; returns the old pair."""
        old = self.current
        await self.storage.add_key(new)
        await self.storage.delete_key(old.id)
        self.current = new
        self.clear()
        logger.info("Kontrol key pair rotated: %s retired, %s current", old.id, new.id)
        return old

    def clear(self) -> None:
        """Forget every cached lookup."""
        self._by_public.clear()
        self._by_id.clear()

    async def _cached(
        self,
        cache: dict[str, tuple[KeyPairRecord | None, float]],
        key: str,
        fetch: Callable[[str], Awaitable[KeyPairRecord]],
    ) -> KeyPairRecord | None:
        now = self._clock()
        hit = cache.get(key)
        if hit is not None and hit[1] > now:
            return hit[0]
        try:
            record: KeyPairRecord | None = await fetch(key)
        except KeyDeletedError as exc:
            record = exc.record
        except KeyNotFoundError:
            record = None
        ttl = (
            self._settings.verify_ttl if record is not None else self._settings.negative_verify_ttl
        )
        if ttl > 0:
            if len(cache) >= _MAX_CACHED:
                cache.clear()
            cache[key] = (record, now + ttl)
        return record
