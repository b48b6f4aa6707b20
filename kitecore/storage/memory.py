"""``memory://``: the embedded Kontrol storage (one process, nothing to install).

Registered as a built-in plugin through ``kite_register_storages``. Lookups use indexes by id, by
``(username, environment, name)``, by name and by username, so a query touches only the kites it
could match; expiry uses a heap of deadlines, so purging costs ``O(log n)`` per entry. Every
method runs without awaiting inside, so concurrent tasks on one event loop never see a half-made
change. The clock is injectable for tests (:func:`time.monotonic` by default).

Change feeds (:meth:`MemoryStorage.watch`) get their events as the writes happen; while a feed's
reader waits, the feed purges entries as their deadlines pass, so expiries show at once.
"""

from __future__ import annotations

import contextlib
import heapq
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kitecore.hookspecs import hookimpl
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.storage import (
    DEREGISTER,
    REGISTER,
    ChangeFeed,
    IdConflictError,
    InvalidInputError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyPairRecord,
    KiteRecord,
    RegisterValue,
    Storage,
    StorageError,
    StorageEvent,
    validate_key_pair,
    validate_query,
    validate_write,
)

__all__ = ["MemoryStorage"]

logger = logging.getLogger(__name__)

_Triple = tuple[str, str, str]


@dataclass(slots=True)
class _Entry:
    record: KiteRecord
    expires_at: float


class MemoryStorage(Storage):
    """Kites and key pairs in this process's memory (lost when it exits)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._by_id: dict[str, _Entry] = {}
        self._by_triple: dict[_Triple, set[str]] = {}
        self._by_name: dict[str, set[str]] = {}
        self._by_username: dict[str, set[str]] = {}
        self._deadlines: list[tuple[float, str]] = []
        self._keys: dict[str, KeyPairRecord] = {}
        self._key_ids_by_public: dict[str, str] = {}
        self._closed = False
        self._feeds: set[ChangeFeed] = set()

    @classmethod
    def from_url(cls, url: str) -> MemoryStorage:
        """The storage factory for ``memory://`` (the URL carries no options)."""
        if not url.startswith("memory:"):
            raise InvalidInputError(f"not a memory storage URL: {url!r}")
        return cls()

    def __len__(self) -> int:
        """How many live kites are stored."""
        self._purge()
        return len(self._by_id)

    # --- kites ---------------------------------------------------------------------------------

    async def upsert(self, kite: KiteIdentity, value: RegisterValue, *, ttl: float) -> None:
        self._check_open()
        validate_write(kite, value, ttl)
        self._purge()
        old = self._by_id.get(kite.id)
        if old is not None and old.record.kite.username != kite.username:
            raise IdConflictError(f"kite id {kite.id} is registered by another user")
        if old is not None:
            self._unindex(old.record.kite)
        record = KiteRecord(kite, value.url, value.key_id)
        self._store(record, ttl)
        self._changed(old.record if old is not None else None, record)

    async def update(self, kite: KiteIdentity, value: RegisterValue, *, ttl: float) -> bool:
        self._check_open()
        validate_write(kite, value, ttl)
        self._purge()
        old = self._by_id.get(kite.id)
        if old is None or old.record.kite.username != kite.username:
            return False
        self._unindex(old.record.kite)
        record = KiteRecord(kite, value.url, value.key_id)
        self._store(record, ttl)
        self._changed(old.record, record)
        return True

    async def delete(self, kite: KiteIdentity) -> None:
        self._check_open()
        old = self._by_id.get(kite.id)
        if old is not None and old.record.kite.username == kite.username:
            del self._by_id[kite.id]
            self._unindex(old.record.kite)
            self._emit(DEREGISTER, old.record)

    async def get(self, query: Query) -> list[KiteRecord]:
        self._check_open()
        validate_query(query)
        self._purge()
        now = self._clock()
        found = []
        for kite_id in self._candidates(query):
            entry = self._by_id.get(kite_id)
            if entry is None or entry.expires_at <= now:
                continue
            if query.matches(entry.record.kite):
                found.append(entry.record)
        return found

    def _candidates(self, query: Query) -> Iterable[str]:
        """The ids worth checking: the smallest index that covers the query."""
        if query.id:
            return (query.id,)
        if query.username and query.environment and query.name:
            return tuple(self._by_triple.get((query.username, query.environment, query.name), ()))
        if query.name:
            return tuple(self._by_name.get(query.name, ()))
        if query.username:
            return tuple(self._by_username.get(query.username, ()))
        return tuple(self._by_id)

    def _store(self, record: KiteRecord, ttl: float) -> None:
        kite = record.kite
        expires_at = self._clock() + ttl
        self._by_id[kite.id] = _Entry(record, expires_at)
        self._by_triple.setdefault((kite.username, kite.environment, kite.name), set()).add(kite.id)
        self._by_name.setdefault(kite.name, set()).add(kite.id)
        self._by_username.setdefault(kite.username, set()).add(kite.id)
        heapq.heappush(self._deadlines, (expires_at, kite.id))
        if self._deadlines[0][1] == kite.id:
            for feed in self._feeds:
                feed.poke()  # the earliest deadline now: readers wait less

    def _unindex(self, kite: KiteIdentity) -> None:
        _discard(self._by_triple, (kite.username, kite.environment, kite.name), kite.id)
        _discard(self._by_name, kite.name, kite.id)
        _discard(self._by_username, kite.username, kite.id)

    def _purge(self) -> None:
        """Drop entries whose deadline has passed (stale heap items are skipped)."""
        now = self._clock()
        deadlines = self._deadlines
        while deadlines and deadlines[0][0] <= now:
            _, kite_id = heapq.heappop(deadlines)
            entry = self._by_id.get(kite_id)
            if entry is not None and entry.expires_at <= now:
                del self._by_id[kite_id]
                self._unindex(entry.record.kite)
                logger.debug("registration of %s expired", entry.record.kite)
                self._emit(DEREGISTER, entry.record)

    # --- change feed ---------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[ChangeFeed]:
        self._check_open()
        feed = ChangeFeed(tick=self._tick)
        self._feeds.add(feed)
        try:
            yield feed
        finally:
            self._feeds.discard(feed)
            feed.close()

    def _tick(self) -> float | None:
        """A feed's reader waits: purge what expired; wait until the next deadline."""
        self._purge()
        if not self._deadlines:
            return None
        return self._deadlines[0][0] - self._clock() + 0.001

    def _changed(self, old: KiteRecord | None, new: KiteRecord) -> None:
        if old is not None and old.kite == new.kite:
            return  # a refresh, or the same kite registering again: no news
        if old is not None:
            self._emit(DEREGISTER, old)
        self._emit(REGISTER, new)

    def _emit(self, action: str, record: KiteRecord) -> None:
        if self._feeds:
            event = StorageEvent(action, record)
            for feed in self._feeds:
                feed.push(event)

    # --- key pairs -----------------------------------------------------------------------------

    async def add_key(self, pair: KeyPairRecord) -> None:
        self._check_open()
        validate_key_pair(pair)
        public = pair.public.strip()
        existing = self._keys.get(pair.id)
        if existing is not None:
            if existing.public != public:
                raise InvalidInputError(f"key pair id {pair.id} is taken by another key")
            return
        if public in self._key_ids_by_public:
            raise InvalidInputError("this public key is already stored under another id")
        stored = KeyPairRecord(pair.id, public, pair.private.strip(), None)
        self._keys[pair.id] = stored
        self._key_ids_by_public[public] = pair.id

    async def delete_key(self, id_or_public: str) -> None:
        self._check_open()
        record = self._find_key(id_or_public)
        if record.deleted_at is None:
            self._keys[record.id] = KeyPairRecord(
                record.id, record.public, record.private, time.time()
            )

    async def get_key_by_id(self, key_id: str) -> KeyPairRecord:
        self._check_open()
        record = self._keys.get(key_id)
        return _active(record)

    async def get_key_by_public(self, public: str) -> KeyPairRecord:
        self._check_open()
        key_id = self._key_ids_by_public.get(public.strip()) if isinstance(public, str) else None
        return _active(self._keys.get(key_id) if key_id else None)

    def _find_key(self, id_or_public: str) -> KeyPairRecord:
        if not isinstance(id_or_public, str) or not id_or_public:
            raise KeyNotFoundError()
        record = self._keys.get(id_or_public)
        if record is None:
            key_id = self._key_ids_by_public.get(id_or_public.strip())
            record = self._keys.get(key_id) if key_id else None
        if record is None:
            raise KeyNotFoundError()
        return record

    # --- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        self._closed = True
        for feed in self._feeds:
            feed.fail(StorageError("the memory storage is closed"))

    def _check_open(self) -> None:
        if self._closed:
            raise StorageError("the memory storage is closed")


def _active(record: KeyPairRecord | None) -> KeyPairRecord:
    if record is None:
        raise KeyNotFoundError()
    if record.deleted_at is not None:
        raise KeyDeletedError(record)
    return record


def _discard(index: dict[Any, set[str]], key: object, kite_id: str) -> None:
    ids = index.get(key)
    if ids is not None:
        ids.discard(kite_id)
        if not ids:
            del index[key]


@hookimpl
def kite_register_storages(register: Callable[[str, Callable[[str], Storage]], None]) -> None:
    """Provide the ``memory`` storage."""
    register("memory", MemoryStorage.from_url)
