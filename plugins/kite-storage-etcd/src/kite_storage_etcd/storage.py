"""``etcd://``: Kontrol storage on the etcd v3 API (asyncio only).

Key layout: :mod:`kite_storage_etcd.layout`. TTLs are etcd leases, shared by the registrations
written within one second (:mod:`kite_storage_etcd.leases`: one grant per second instead of one
round trip and one raft proposal per registration):

* :meth:`EtcdStorage.upsert` puts the registration's four keys on the current window's lease in
  one transaction, provided the id is free or already owned by the same username (a nested
  transaction, so 200 writers racing for one id need no retries). Keys of an older identity of
  the same id (another version, say) are then deleted.
* :meth:`EtcdStorage.update` reads the id index and writes the entry again on the current
  window's lease (a refresh), guarded by the id key's revision; an entry already gone (its lease
  ran out) makes ``update`` return ``False``, so the caller re-creates it with ``upsert`` (a
  heartbeat racing its own expiry re-registers instead of being lost).
* :meth:`EtcdStorage.delete` deletes the four keys, guarded by the id key's revision.

Queries are answered from a :class:`~.cache.KiteCache` of every registration, built from one
range read and kept up by the storage's etcd watch (:mod:`.feed`), while that watch is open;
otherwise (and with ``cache=off``) each query reads etcd. Writes through this storage update the
cache as soon as etcd confirms them.

A shared lease is never kept alive or revoked for one kite, so a kite that stops refreshing
disappears when the lease of its window runs out. etcd leases count whole seconds and etcd
raises short ones to its minimum (1.5 election timeouts, 2 s by default): an entry lives at
least ``ttl`` and disappears within about two seconds after that.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aetcd

from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.storage import (
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
    validate_key_pair,
    validate_query,
    validate_write,
)
from kitecore.storage.batch import Batcher

from .cache import KiteCache
from .endpoints import Endpoints, require_asyncio
from .feed import EtcdFeed
from .layout import KeyLayout, StoredKite, decode_key_pair, encode_key_pair
from .leases import WindowLeases
from .txn import claim_request, delete_op, put_op, send_txn, unchanged_since
from .url import EtcdURL, parse_etcd_url

__all__ = ["EtcdStorage", "lease_ttl"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
#: What claiming an id says: (owned, the id index's previous value, the owner if not owned,
#: the revision of the write).
Claim = tuple[bool, bytes | None, str, int]

#: How often a conditional write is retried when another writer changed the key in between.
_RETRIES = 8
#: Where the id index's put is in :meth:`EtcdStorage._puts`.
_ID_PUT = 2
#: Seconds between attempts to start the cache while etcd does not answer.
_CACHE_RETRY = 1.0


def lease_ttl(ttl: float) -> int:
    """The lease TTL for a registration TTL: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(ttl))


class EtcdStorage(Storage):
    """Kites and key pairs in etcd, under the URL's key prefix. Asyncio only.

    Nothing is contacted until the first call, so Kontrol starts even when etcd is down; each
    call then fails within the URL's ``timeout`` with a :class:`StorageError`.
    """

    def __init__(self, url: EtcdURL | str) -> None:
        self.url = parse_etcd_url(url) if isinstance(url, str) else url
        self.layout = KeyLayout(self.url.prefix)
        self._etcd = Endpoints(self.url)
        self._leases = WindowLeases(self._grant)
        self._claims: Batcher[StoredKite, Claim] = Batcher(
            self._claim_batch, group=_ttl_of, key=_id_of
        )
        #: The read cache (``None`` with ``cache=off``); see :mod:`.cache`.
        self.cache = KiteCache() if self.url.cache else None
        #: The etcd watch feeding the cache and the change feeds, once started.
        self._stream: EtcdFeed | None = None
        self._stream_task: asyncio.Task[None] | None = None
        self._stream_lock: asyncio.Lock | None = None
        self._starter: asyncio.Task[None] | None = None
        self._start_after = 0.0

    @classmethod
    def from_url(cls, url: str) -> EtcdStorage:
        """The storage factory for ``etcd://host:2379[,host:port...]/prefix[?timeout=5]``."""
        require_asyncio()
        return cls(url)

    def __repr__(self) -> str:
        return f"<EtcdStorage {self.url}>"

    # --- kites ---------------------------------------------------------------------------------

    async def upsert(self, kite: KiteIdentity, value: RegisterValue, *, ttl: float) -> None:
        validate_write(kite, value, ttl)
        stored = StoredKite(KiteRecord(kite, value.url, value.key_id), lease_ttl(ttl))
        owned, previous, owner, revision = await self._claims.submit(stored)
        if not owned:
            raise IdConflictError(f"kite id {kite.id} is registered by another user ({owner})")
        self._cached(kite.id, revision, stored.record)
        if previous is not None:
            await self._delete_stale(previous, stored)

    async def _on_window_lease(
        self, ttl: int, what: str, operation: Callable[[aetcd.Client, int], Awaitable[T]]
    ) -> T:
        """Run ``operation(client, lease)`` with the current window's lease for ``ttl``; once
        more with a new lease if that one is gone from etcd (revoked by hand, say)."""
        for attempt in (1, 2):
            lease = await self._leases.lease(ttl)
            try:
                return await self._etcd.call(what, functools.partial(_with_lease, operation, lease))
            except StorageError as exc:
                if attempt == 2 or "lease not found" not in str(exc):
                    raise
                logger.info("etcd lease %x is gone; granting a new one", lease)
                self._leases.forget(lease)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _claim_batch(self, batch: list[StoredKite]) -> list[Claim]:
        """Claim every registration of ``batch`` (one TTL, distinct ids: :mod:`.batch`) in
        one transaction, on the current window's lease."""
        return await self._on_window_lease(
            batch[0].ttl, "upsert", functools.partial(self._claim_txn, batch)
        )

    async def _claim_txn(
        self, batch: list[StoredKite], client: aetcd.Client, lease: int
    ) -> list[Claim]:
        """Put each of ``batch`` on ``lease`` if its id is free or ours, each in a nested
        transaction: (owned, the id index's previous value, owner, revision) for each. The
        protobuf requests are built once (:mod:`kite_storage_etcd.txn`)."""
        claims = []
        for stored in batch:
            kite = stored.record.kite
            owner_key = self.layout.owner_key(kite.id)
            puts = self._puts(stored, lease)
            claims.append(claim_request(owner_key, kite.username.encode(), puts))
        response = await send_txn(client, claims)
        return [_claim_outcome(op.response_txn) for op in response.responses]

    def _puts(self, stored: StoredKite, lease: int) -> list[Any]:
        """The owner key, then the three record keys (the id index's with its previous value,
        to find an older identity's keys), all on ``lease``: the ``RequestOp`` messages of a
        registration (:meth:`_claim_txn`) and of a refresh (:meth:`_replace`)."""
        kite = stored.record.kite
        data = stored.encode()
        kite_key, id_key, name_key = self.layout.record_keys(kite)
        return [
            put_op(self.layout.owner_key(kite.id), kite.username.encode(), lease),
            put_op(kite_key, data, lease),
            put_op(id_key, data, lease, prev_kv=True),
            put_op(name_key, data, lease),
        ]

    def _stale_keys(self, previous: KiteRecord, wanted: StoredKite) -> list[bytes]:
        """Keys of ``previous`` that writing ``wanted`` (same id) left behind."""
        old = self.layout.record_keys(previous.kite)
        new = self.layout.record_keys(wanted.record.kite)
        return [key for key in old if key not in new]

    async def _delete_stale(self, previous_value: bytes, stored: StoredKite) -> None:
        """After a re-registration under another identity, delete the old identity's keys
        (unless the id was written again meanwhile)."""
        try:
            previous = StoredKite.decode(previous_value)
        except StorageError:
            return
        stale = self._stale_keys(previous.record, stored)
        if not stale:
            return
        id_key = self.layout.id_key(stored.record.kite.id)
        data = stored.encode()

        async def txn(client: aetcd.Client) -> None:
            t = client.transactions
            await client.transaction(
                compare=[t.value(id_key) == data],
                success=[t.delete(key) for key in stale],
                failure=[],
            )

        await self._etcd.call("upsert", txn)

    async def update(self, kite: KiteIdentity, value: RegisterValue, *, ttl: float) -> bool:
        validate_write(kite, value, ttl)
        wanted = StoredKite(KiteRecord(kite, value.url, value.key_id), lease_ttl(ttl))
        id_key = self.layout.id_key(kite.id)
        known = self._known(kite.id)
        if known is not None and known[1].kite.username == kite.username:
            # What the cache shows, written only if etcd still holds exactly that (the id
            # key's revision); else read etcd, as without a cache.
            revision = await self._replace(known[1], wanted, id_key, known[0])
            if revision:
                self._cached(kite.id, revision, wanted.record)
                return True
        for _ in range(_RETRIES):
            kv = await self._etcd.call("update", lambda c: c.get(id_key))
            if kv is None:
                return False
            current = StoredKite.decode(kv.value).record
            if current.kite.username != kite.username:
                return False
            revision = await self._replace(current, wanted, id_key, kv.mod_revision)
            if revision:
                self._cached(kite.id, revision, wanted.record)
                return True
        raise StorageError(f"update of {kite} kept racing other writers; try again")

    def _known(self, kite_id: str) -> tuple[int, KiteRecord] | None:
        """The cache's entry for ``kite_id`` (the revision of its id key, the record) while the
        cache is live; else None."""
        cache = self.cache
        return cache.entry(kite_id) if cache is not None and cache.live else None

    async def _replace(
        self, current: KiteRecord, wanted: StoredKite, id_key: bytes, revision: int
    ) -> int:
        """Write ``wanted`` (over ``current``) on the current window's lease if the id key is
        still at ``revision``; an older identity's keys go in the same transaction. The
        revision of the write, 0 if the id key had changed."""
        stale = self._stale_keys(current, wanted)

        async def txn(client: aetcd.Client, lease: int) -> int:
            response = await send_txn(
                client,
                [*self._puts(wanted, lease), *map(delete_op, stale)],
                [unchanged_since(id_key, revision)],
            )
            if not response.succeeded:
                return 0
            return int(response.responses[_ID_PUT].response_put.header.revision)

        return await self._on_window_lease(wanted.ttl, "update", txn)

    async def delete(self, kite: KiteIdentity) -> None:
        if not isinstance(kite, KiteIdentity) or not kite.id or "/" in kite.id:
            return
        id_key = self.layout.id_key(kite.id)
        for _ in range(_RETRIES):
            kv = await self._etcd.call("delete", lambda c: c.get(id_key))
            if kv is None:
                return
            stored = StoredKite.decode(kv.value).record.kite
            if stored.username != kite.username:
                return
            keys = [self.layout.owner_key(kite.id), *self.layout.record_keys(stored)]

            async def txn(
                client: aetcd.Client, revision: int = kv.mod_revision, keys: list[bytes] = keys
            ) -> int:
                t = client.transactions
                succeeded, responses = await client.transaction(
                    compare=[t.mod(id_key) == revision],
                    success=[t.delete(key) for key in keys],
                    failure=[],
                )
                return int(responses[0].response_delete_range.header.revision) if succeeded else 0

            deleted = await self._etcd.call("delete", txn)
            if deleted:
                self._cached(kite.id, deleted, None)
                return
        raise StorageError(f"delete of {kite} kept racing other writers; try again")

    async def get(self, query: Query) -> list[KiteRecord]:
        validate_query(query)
        cache = self.cache
        if cache is not None:
            if cache.live:
                return cache.get(query)
            self._start_cache()
        return await self._read(query)

    async def _read(self, query: Query) -> list[KiteRecord]:
        """``get`` from etcd itself (a linearizable read)."""
        plan = self.layout.plan(query)
        if plan.prefix:
            found = await self._etcd.call("get", lambda c: c.get_prefix(plan.key))
            kvs = list(found.kvs)
        else:
            kv = await self._etcd.call("get", lambda c: c.get(plan.key))
            kvs = [] if kv is None else [kv]
        # During a re-registration under another identity, the old keys live until their
        # lease is revoked a moment later: keep the newest record of each id.
        newest: dict[str, tuple[int, KiteRecord]] = {}
        for kv in kvs:
            try:
                record = StoredKite.decode(kv.value).record
            except StorageError as exc:
                logger.warning("skipping %r: %s", kv.key, exc)
                continue
            if not query.matches(record.kite):
                continue
            seen = newest.get(record.kite.id)
            if seen is None or seen[0] < kv.mod_revision:
                newest[record.kite.id] = (kv.mod_revision, record)
        return [record for _, record in newest.values()]

    @contextlib.asynccontextmanager
    async def watch(self) -> AsyncIterator[ChangeFeed]:
        """The change feed: events of the storage's etcd watch on the id index (the one that
        feeds the cache, :mod:`kite_storage_etcd.feed`) after the revision etcd has now."""
        stream = await self._started_stream()
        feed = ChangeFeed()
        subscription = stream.subscribe(feed)
        try:
            stream.open_from(subscription, await stream.current_revision() + 1)
            yield feed
        finally:
            stream.unsubscribe(subscription)
            feed.close()

    # --- the cache and its watch ---------------------------------------------------------------

    def _cached(self, kite_id: str, revision: int, record: KiteRecord | None) -> None:
        """Apply a write etcd confirmed at ``revision`` to the cache (once it was asked for:
        before that nothing would ever trim its tombstones)."""
        cache = self.cache
        if cache is not None and revision and (self._stream or self._starter):
            cache.apply_local(kite_id, revision, record)

    def _start_cache(self) -> None:
        """Build the cache and start its watch in the background (queries read etcd meanwhile)."""
        if self._stream is not None or self._starter is not None or self._etcd.closed:
            return
        if time.monotonic() < self._start_after:
            return
        require_asyncio()
        self._starter = asyncio.get_running_loop().create_task(self._start_in_background())

    async def _start_in_background(self) -> None:
        try:
            await self._started_stream()
        except StorageError as exc:
            logger.info("etcd cache: not started (queries read etcd): %s", exc)
            self._start_after = time.monotonic() + _CACHE_RETRY
        except Exception:  # a bug must not go unseen; queries keep reading etcd
            logger.exception("etcd cache: starting it failed (queries read etcd)")
            self._start_after = time.monotonic() + _CACHE_RETRY
        finally:
            self._starter = None

    async def _started_stream(self) -> EtcdFeed:
        """The storage's watch, started (cache built) by the first caller."""
        if self._stream_lock is None:
            self._stream_lock = asyncio.Lock()
        async with self._stream_lock:
            if self._stream is None:
                require_asyncio()
                stream = EtcdFeed(self._etcd, self.layout, cache=self.cache)
                await stream.start()
                if self._etcd.closed:
                    raise StorageError("the etcd storage is closed")
                self._stream = stream
                # a plain asyncio task: it outlives the caller, until aclose()
                self._stream_task = asyncio.get_running_loop().create_task(self._run(stream))
            return self._stream

    async def _run(self, stream: EtcdFeed) -> None:
        """Run the watch; if it breaks on something unexpected (a bug), say so, end its change
        feeds (their readers reconnect) and let the next query or watch start a new one."""
        try:
            await stream.run()
        except Exception as exc:
            logger.exception("etcd watch broke; queries read etcd until it is started again")
            stream.fail(StorageError(f"the etcd watch broke: {exc!r}"))
            if self._stream is stream:
                self._stream = None

    # --- leases --------------------------------------------------------------------------------

    async def _grant(self, ttl: int) -> int:
        lease = await self._etcd.call("lease grant", lambda c: c.lease(ttl))
        return int(lease.id)

    # --- key pairs -----------------------------------------------------------------------------

    async def add_key(self, pair: KeyPairRecord) -> None:
        validate_key_pair(pair)
        public = pair.public.strip()
        stored = KeyPairRecord(pair.id, public, pair.private.strip(), None)
        id_key = self.layout.key_pair_key(pair.id)
        public_key = self.layout.public_key_key(public)

        async def txn(client: aetcd.Client) -> tuple[bool, list[Any]]:
            t = client.transactions
            result: tuple[bool, list[Any]] = await client.transaction(
                compare=[t.create(id_key) == 0, t.create(public_key) == 0],
                success=[
                    t.put(id_key, encode_key_pair(stored)),
                    t.put(public_key, pair.id.encode()),
                ],
                failure=[t.get(id_key), t.get(public_key)],
            )
            return result

        succeeded, responses = await self._etcd.call("add key", txn)
        if succeeded:
            return
        by_id, by_public = responses
        if by_id:
            if decode_key_pair(by_id[0][0]).public != public:
                raise InvalidInputError(f"key pair id {pair.id} is taken by another key")
            return  # the same pair again (possibly retired): nothing to do
        if by_public:
            raise InvalidInputError("this public key is already stored under another id")
        raise StorageError("key pair storage is inconsistent: a public key index without a pair")

    async def delete_key(self, id_or_public: str) -> None:
        for _ in range(_RETRIES):
            record, key, revision = await self._find_key(id_or_public)
            if record.retired:
                return
            retired = KeyPairRecord(record.id, record.public, record.private, time.time())

            async def txn(
                client: aetcd.Client,
                key: bytes = key,
                revision: int = revision,
                data: bytes = encode_key_pair(retired),
            ) -> bool:
                t = client.transactions
                succeeded, _ = await client.transaction(
                    compare=[t.mod(key) == revision],
                    success=[t.put(key, data)],
                    failure=[],
                )
                return bool(succeeded)

            if await self._etcd.call("delete key", txn):
                return
        raise StorageError("retiring the key pair kept racing other writers; try again")

    async def get_key_by_id(self, key_id: str) -> KeyPairRecord:
        if not isinstance(key_id, str) or not key_id:
            raise KeyNotFoundError()
        return _active(await self._key_by_id(key_id))

    async def get_key_by_public(self, public: str) -> KeyPairRecord:
        if not isinstance(public, str) or not public.strip():
            raise KeyNotFoundError()
        index = self.layout.public_key_key(public)
        kv = await self._etcd.call("get key", lambda c: c.get(index))
        if kv is None:
            raise KeyNotFoundError()
        return _active(await self._key_by_id(kv.value.decode()))

    async def _key_by_id(self, key_id: str) -> KeyPairRecord | None:
        key = self.layout.key_pair_key(key_id)
        kv = await self._etcd.call("get key", lambda c: c.get(key))
        return None if kv is None else decode_key_pair(kv.value)

    async def _find_key(self, id_or_public: str) -> tuple[KeyPairRecord, bytes, int]:
        """The pair named by id or public PEM, its key and revision; KeyNotFoundError if none."""
        if not isinstance(id_or_public, str) or not id_or_public.strip():
            raise KeyNotFoundError()
        key_id = id_or_public
        if "/" not in id_or_public:
            kv = await self._etcd.call("get key", lambda c: c.get(self.layout.key_pair_key(key_id)))
            if kv is not None:
                return decode_key_pair(kv.value), kv.key, kv.mod_revision
        index = self.layout.public_key_key(id_or_public)
        found = await self._etcd.call("get key", lambda c: c.get(index))
        if found is None:
            raise KeyNotFoundError()
        key = self.layout.key_pair_key(found.value.decode())
        kv = await self._etcd.call("get key", lambda c: c.get(key))
        if kv is None:
            raise KeyNotFoundError()
        return decode_key_pair(kv.value), kv.key, kv.mod_revision

    # --- lifecycle -----------------------------------------------------------------------------

    async def aclose(self) -> None:
        if self._starter is not None:
            # let a cache read in flight finish (milliseconds) rather than cancel a gRPC call:
            # grpc.aio may complete a cancelled call after its event loop has closed
            await asyncio.wait([self._starter], timeout=1.0)
        for task in (self._starter, self._stream_task):
            if task is not None:
                await _cancelled(task)
        self._starter = self._stream_task = None
        if self._stream is not None:
            self._stream.fail(StorageError("the etcd storage is closed"))
        if self.cache is not None:
            self.cache.live = False
        await self._etcd.aclose()


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it ended. Cancelled again until it does: on Python 3.11,
    ``asyncio.wait_for`` (inside aetcd's watch set-up) can swallow a cancellation."""
    while not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=0.5)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("etcd storage task ended with %r", task.exception())


def _ttl_of(stored: StoredKite) -> int:
    return stored.ttl


def _id_of(stored: StoredKite) -> str:
    return stored.record.kite.id


def _claim_outcome(response: Any) -> Claim:
    """The :data:`Claim` from one registration's nested transaction response."""
    if not response.succeeded:
        response = response.responses[0].response_txn
        if not response.succeeded:
            kvs = response.responses[0].response_range.kvs
            return False, None, kvs[0].value.decode(errors="replace") if kvs else "?", 0
    put = response.responses[_ID_PUT].response_put
    previous = put.prev_kv.value if put.HasField("prev_kv") else None
    return True, previous, "", int(put.header.revision)


def _with_lease(
    operation: Callable[[aetcd.Client, int], Awaitable[T]], lease: int, client: aetcd.Client
) -> Awaitable[T]:
    return operation(client, lease)


def _active(record: KeyPairRecord | None) -> KeyPairRecord:
    if record is None:
        raise KeyNotFoundError()
    if record.deleted_at is not None:
        raise KeyDeletedError(record)
    return record
