"""The etcd storage's watch: one native etcd watch on the id index keys, feeding the storage's
read cache (:mod:`.cache`) and every open change feed.

Each registration has one id key (``P/ids/<id>``, :mod:`.layout`) whose value is the whole record,
so watching that prefix with previous values (``prev_kv``) says everything:

* a put that creates the key (or replaces a record of another identity) is ``REGISTER`` (and
  first ``DEREGISTER`` of the old identity);
* a put with the same identity (a new URL, a refresh under a new lease) is no news;
* a delete (``delete``, a revoked or expired lease) is ``DEREGISTER`` of the previous value.

The watch starts at the revision of the range read that builds the cache (or, without a cache,
of a keys-only read), so the cache misses nothing; a change feed opened later gets every event
after the revision etcd had when it was opened (:meth:`EtcdFeed.subscribe`), so nothing committed
after ``watch()`` returned is missed. When the stream drops (the endpoint died, the cluster lost
its leader), the cache stops answering and the stream is opened again from the revision after the
last event seen, on the next endpoint, with a growing pause; once it is open the cache answers
again. If etcd compacted that revision away meanwhile, the feeds say ``RESYNC``, the cache is
read again (range read, then a watch from its revision) and the stream continues from there.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aetcd
import aetcd.exceptions
import anyio
import grpc

from kitecore.storage import (
    DEREGISTER,
    REGISTER,
    RESYNC,
    ChangeFeed,
    KiteRecord,
    StorageError,
    StorageEvent,
)

from .layout import StoredKite

if TYPE_CHECKING:
    from .cache import KiteCache
    from .endpoints import Endpoints
    from .layout import KeyLayout

__all__ = ["EtcdFeed", "Subscription"]

logger = logging.getLogger(__name__)

_STREAM_ERRORS = (aetcd.exceptions.ClientError, grpc.RpcError, OSError, TimeoutError)


@dataclass(eq=False, slots=True)
class Subscription:
    """One change feed reading the watch: events from revision ``floor`` on. Until the floor is
    known (:meth:`EtcdFeed.open_from`), events wait in ``pending`` with their revisions."""

    feed: ChangeFeed
    floor: int | None = None
    pending: list[tuple[float, StorageEvent]] = field(default_factory=list)

    def offer(self, revision: float, event: StorageEvent) -> None:
        if self.floor is None:
            self.pending.append((revision, event))
        elif revision >= self.floor:
            self.feed.push(event)


class EtcdFeed:
    """Pumps one etcd watch into the storage's :class:`~.cache.KiteCache` (if any) and into
    every subscribed :class:`ChangeFeed` (see the module docs)."""

    def __init__(
        self,
        endpoints: Endpoints,
        layout: KeyLayout,
        feed: ChangeFeed | None = None,
        *,
        cache: KiteCache | None = None,
    ) -> None:
        self._etcd = endpoints
        self._layout = layout
        self._id_prefix_length = len(layout.id_prefix)
        self.cache = cache
        self._subscriptions: list[Subscription] = []
        if feed is not None:
            self._subscriptions.append(Subscription(feed, 0))
        #: The next revision to read.
        self.next_revision = 0
        #: How many times the stream was opened again after a failure (for tests and logs).
        self.reconnects = 0
        #: How many times the cache was read again after a compaction (for tests and logs).
        self.rebuilds = 0

    # --- subscribers ---------------------------------------------------------------------

    def subscribe(self, feed: ChangeFeed) -> Subscription:
        """Add ``feed``; it gets nothing until :meth:`open_from` says from which revision."""
        subscription = Subscription(feed)
        self._subscriptions.append(subscription)
        return subscription

    def open_from(self, subscription: Subscription, revision: int) -> None:
        """Deliver to ``subscription`` the events from ``revision`` on (held ones first)."""
        subscription.floor = revision
        pending, subscription.pending = subscription.pending, []
        for event_revision, event in pending:
            subscription.offer(event_revision, event)

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop feeding ``subscription``."""
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)

    def fail(self, error: BaseException) -> None:
        """End every subscribed feed with ``error`` (the storage was closed)."""
        if self.cache is not None:
            self.cache.live = False
        for subscription in self._subscriptions:
            subscription.feed.fail(error)
        self._subscriptions.clear()

    def _resync(self) -> None:
        for subscription in self._subscriptions:
            subscription.offer(math.inf, StorageEvent(RESYNC))

    # --- the stream ----------------------------------------------------------------------

    async def start(self) -> None:
        """Pin the starting revision (the feed is live from here); with a cache, build it
        from a range read of the id index at that revision."""
        prefix = self._layout.id_prefix
        if self.cache is None:
            self.next_revision = await self.current_revision()
            self.next_revision += 1
            return
        found = await self._etcd.call("cache read", lambda c: c.get_prefix(prefix))
        revision = int(found.header.revision)
        records = []
        for kv in found.kvs:
            try:
                record = StoredKite.decode(kv.value).record
            except StorageError as exc:
                logger.warning("etcd cache: skipping %r: %s", kv.key, exc)
                continue
            records.append((record.kite.id, int(kv.mod_revision), record))
        self.cache.rebuild(records, revision)
        self.next_revision = revision + 1

    async def current_revision(self) -> int:
        """etcd's current revision (one small read)."""
        prefix = self._layout.id_prefix
        found = await self._etcd.call("watch start", lambda c: c.get_prefix(prefix, keys_only=True))
        return int(found.header.revision) if found is not None else 0

    async def run(self) -> None:
        """Stream events until cancelled; errors reopen the stream, a closed storage ends it."""
        pause = 0.05
        while True:
            if self._etcd.closed:
                self.fail(StorageError("the etcd storage is closed"))
                return
            try:
                index, client = self._etcd.current()
            except StorageError as exc:
                self.fail(exc)
                return
            try:
                await self._stream(client)
            except aetcd.exceptions.RevisionCompactedError as exc:
                logger.warning(
                    "etcd change feed: revision %d was compacted (now %d); resynchronising",
                    self.next_revision,
                    exc.compacted_revision,
                )
                self._resync()
                try:
                    await self.start()
                    self.rebuilds += 1
                except StorageError as error:
                    logger.warning("etcd change feed: %s", error)
                    await anyio.sleep(pause)
                continue
            except _STREAM_ERRORS as exc:
                if self._etcd.closed:
                    continue
                logger.warning(
                    "etcd change feed: stream lost (%s); resuming from revision %d in %gs",
                    exc or type(exc).__name__,
                    self.next_revision,
                    pause,
                )
                self._etcd.fail_over(index)
            else:
                logger.info("etcd change feed: stream ended; resuming from %d", self.next_revision)
            self.reconnects += 1
            await anyio.sleep(pause)
            pause = min(pause * 2, 2.0)

    async def _stream(self, client: aetcd.Client) -> None:
        cache = self.cache
        watch = await client.watch_prefix(
            self._layout.id_prefix, start_revision=self.next_revision, prev_kv=True
        )
        try:
            if cache is not None:
                cache.live = True  # the watch is open: the cache follows etcd again
            async for event in watch:
                revision = int(event.kv.mod_revision)
                self._push(event, revision)
                self.next_revision = max(self.next_revision, revision + 1)
        finally:
            if cache is not None:
                cache.live = False
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                try:
                    await watch.cancel()
                except Exception as exc:  # the stream is gone anyway
                    logger.debug("etcd change feed: cancelling the watch: %s", exc)

    def _push(self, event: Any, revision: int) -> None:
        cache = self.cache
        kv = event.kv
        if cache is not None and not self._subscriptions:
            kite_id = kv.key[self._id_prefix_length :].decode(errors="replace")
            if cache.seen(kite_id, revision):  # this storage's own write, applied already
                cache.reached(revision)
                return
        current: KiteRecord | None = None
        if event.kind != "DELETE":
            try:
                current = StoredKite.decode(kv.value).record
            except StorageError as exc:
                logger.warning("etcd change feed: skipping %r: %s", kv.key, exc)
                # what the storage's reads skip, the cache does not hold
        if cache is not None:
            kite_id = kv.key[self._id_prefix_length :].decode(errors="replace")
            cache.apply_watched(kite_id, revision, current)
        if not self._subscriptions:
            return
        try:
            # aetcd hands an empty previous value (version 0) when the key had none
            old = event.prev_kv
            previous = StoredKite.decode(old.value).record if old and old.value else None
        except StorageError:
            previous = None
        for action, record in _changes(event, current, previous):
            change = StorageEvent(action, record)
            for subscription in self._subscriptions:
                subscription.offer(revision, change)


def _changes(
    event: Any, current: KiteRecord | None, previous: KiteRecord | None
) -> list[tuple[str, KiteRecord | None]]:
    """The change-feed events of one watch event (``RESYNC`` when it cannot be told)."""
    if event.kind == "DELETE":
        if previous is None:  # its old value was compacted away: read again
            return [(RESYNC, None)]
        return [(DEREGISTER, previous)]
    if current is None:  # unreadable: skipped
        return []
    if previous is not None and previous.kite == current.kite:
        return []
    if previous is None and int(event.kv.version) != 1:
        return [(RESYNC, None)]  # an update whose old value is gone: cannot tell whether it is news
    if previous is not None:
        return [(DEREGISTER, previous), (REGISTER, current)]
    return [(REGISTER, current)]
