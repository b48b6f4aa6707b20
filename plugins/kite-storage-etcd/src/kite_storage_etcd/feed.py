"""The etcd storage's change feed: a native etcd watch on the id index keys.

Each registration has one id key (``P/ids/<id>``, :mod:`.layout`) whose value is the whole record,
so watching that prefix with previous values (``prev_kv``) says everything:

* a put that creates the key (or replaces a record of another identity) is ``REGISTER`` (and
  first ``DEREGISTER`` of the old identity);
* a put with the same identity (a new URL, a refresh under a new lease) is no news;
* a delete (``delete``, a revoked or expired lease) is ``DEREGISTER`` of the previous value.

The watch starts at the revision read when the feed opens, so nothing committed after
``watch()`` returned is missed. When the stream drops (the endpoint died, the cluster lost its
leader), it is opened again from the revision after the last event seen, on the next endpoint,
with a growing pause; if etcd compacted that revision away meanwhile, the feed says ``RESYNC``
and continues from the current revision.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import aetcd
import aetcd.exceptions
import anyio
import grpc

from kitecore.storage import DEREGISTER, REGISTER, ChangeFeed, StorageError, StorageEvent

from .layout import StoredKite

if TYPE_CHECKING:
    from .endpoints import Endpoints
    from .layout import KeyLayout

__all__ = ["EtcdFeed"]

logger = logging.getLogger(__name__)

_STREAM_ERRORS = (aetcd.exceptions.ClientError, grpc.RpcError, OSError, TimeoutError)


class EtcdFeed:
    """Pumps one etcd watch into a :class:`ChangeFeed` (see the module docs)."""

    def __init__(self, endpoints: Endpoints, layout: KeyLayout, feed: ChangeFeed) -> None:
        self._etcd = endpoints
        self._layout = layout
        self.feed = feed
        #: The next revision to read.
        self.next_revision = 0
        #: How many times the stream was opened again after a failure (for tests and logs).
        self.reconnects = 0

    async def start(self) -> None:
        """Pin the starting revision (the feed is live from here)."""
        self.next_revision = await self._current_revision() + 1

    async def _current_revision(self) -> int:
        prefix = self._layout.id_prefix
        found = await self._etcd.call("watch start", lambda c: c.get_prefix(prefix, keys_only=True))
        return int(found.header.revision) if found is not None else 0

    async def run(self) -> None:
        """Stream events until cancelled; errors reopen the stream, a closed storage ends it."""
        pause = 0.05
        while True:
            if self._etcd.closed:
                self.feed.fail(StorageError("the etcd storage is closed"))
                return
            try:
                index, client = self._etcd.current()
            except StorageError as exc:
                self.feed.fail(exc)
                return
            try:
                await self._stream(client)
            except aetcd.exceptions.RevisionCompactedError as exc:
                logger.warning(
                    "etcd change feed: revision %d was compacted (now %d); resynchronising",
                    self.next_revision,
                    exc.compacted_revision,
                )
                self.feed.resync()
                try:
                    await self.start()
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
        watch = await client.watch_prefix(
            self._layout.id_prefix, start_revision=self.next_revision, prev_kv=True
        )
        try:
            async for event in watch:
                self._push(event)
                self.next_revision = max(self.next_revision, int(event.kv.mod_revision) + 1)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(1):
                try:
                    await watch.cancel()
                except Exception as exc:  # the stream is gone anyway
                    logger.debug("etcd change feed: cancelling the watch: %s", exc)

    def _push(self, event: Any) -> None:
        feed = self.feed
        try:
            # aetcd hands an empty previous value (version 0) when the key had none
            old = event.prev_kv
            previous = StoredKite.decode(old.value).record if old and old.value else None
            if event.kind == "DELETE":
                if previous is None:  # its old value was compacted away: read again
                    feed.resync()
                else:
                    feed.push(StorageEvent(DEREGISTER, previous))
                return
            current = StoredKite.decode(event.kv.value).record
        except StorageError as exc:
            logger.warning("etcd change feed: skipping %r: %s", event.kv.key, exc)
            return
        if previous is not None and previous.kite == current.kite:
            return
        if previous is None and int(event.kv.version) != 1:
            feed.resync()  # an update whose old value is gone: cannot tell whether it is news
            return
        if previous is not None:
            feed.push(StorageEvent(DEREGISTER, previous))
        feed.push(StorageEvent(REGISTER, current))
