"""Registry watches: ``getKites`` with a watch function, and ``cancelWatcher`` (protocol.md §15).

A caller passes a function as ``watchHandler`` (kite.js) or ``watchCallback`` (Go's protocol
struct); the answer gains a ``watcherID`` and the function is then called with one argument,
``{"error": null, "result": EVENT}``, for every kite that starts or stops matching the query::

    {"action": "REGISTER", "kite": {...}, "url": "...", "token": "<jwt>"}
    {"action": "DEREGISTER", "kite": {...}, "token": ""}

(``"token": ""`` on DEREGISTER because kite.js 1.0.13 builds a kite from every event and reads
its token's claims: a missing token crashes its connection; Go decodes ``""`` as absent.)

The events come from the storage's change feed (:meth:`kitecore.storage.Storage.watch`), so a
kite that registers through another Kontrol sharing the storage, or expires, shows too. The
:class:`WatchHub` reads that feed in one task and hands each event to the watchers whose query
matches (indexed by kite name). Each :class:`Watcher` remembers which kites it reported, so a
caller never sees a kite twice or a departure of a kite it was never told about, whatever the
race between its ``getKites`` answer and the feed.

Slow callers: events are written to the caller's connection at once; when that connection has
more than ``watch_backlog`` messages or ``watch_backlog_bytes`` bytes waiting (the caller does
not read), the watcher gets one
``{"error": {"type": "watchError", ...}}`` and is dropped: Kontrol never queues without bound
and never waits for one caller. A watcher ends with ``cancelWatcher``, or with its connection.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import anyio

from kitecore.protocol.errors import GenericError, KiteError
from kitecore.protocol.identity import Query
from kitecore.storage import (
    DEREGISTER,
    REGISTER,
    RESYNC,
    KiteRecord,
    StorageError,
    StorageEvent,
    WatchUnsupportedError,
)

if TYPE_CHECKING:
    from kitecore.client import Client
    from kitecore.protocol.identity import KiteIdentity

    from .server import Kontrol

__all__ = ["WATCH_ERROR", "WatchHub", "Watcher", "watch_function"]

logger = logging.getLogger(__name__)

#: The error type a watcher gets before it is dropped (Go's disabled watcher code used it).
WATCH_ERROR = "watchError"


def watch_function(args: dict[str, Any]) -> Any:
    """The watch function of ``getKites`` arguments, ``None`` when there is none.

    ``watchHandler`` (kite.js) and ``watchCallback`` (Go) are both accepted; ``null`` means no
    watch; anything else that is not a function is an error.
    """
    for key in ("watchHandler", "watchCallback"):
        value = args.get(key)
        if value is None:
            continue
        if not callable(value):
            raise GenericError(f"invalid {key}: a watch needs a function, not {type_name(value)}")
        return value
    return None


def type_name(value: Any) -> str:
    """JSON's name for ``value``'s type, for error messages."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    names: dict[type[Any], str] = {str: "a string", list: "an array", dict: "an object"}
    return names.get(type(value), type(value).__name__)


class Watcher:
    """One caller's watch: its query, its function, and the kites it was told about."""

    __slots__ = (
        "__weakref__",
        "_hub",
        "active",
        "callback",
        "client",
        "closed",
        "id",
        "known",
        "query",
        "stash",
        "username",
    )

    def __init__(
        self, hub: WatchHub, client: Client, callback: Any, query: Query, username: str
    ) -> None:
        self._hub = hub
        self.id = str(uuid.uuid4())
        self.client = client
        self.callback = callback
        self.query = query
        self.username = username
        #: id -> identity of every matching kite the caller knows about.
        self.known: dict[str, KiteIdentity] = {}
        #: Events that arrived before the ``getKites`` answer went out.
        self.stash: deque[StorageEvent] = deque()
        self.active = False
        self.closed = False

    def __repr__(self) -> str:
        return f"<Watcher {self.id} {self.query} of {self.username}>"

    async def offer(self, event: StorageEvent) -> None:
        """Deliver a matching event now, or keep it until the watcher is active."""
        if self.closed:
            return
        if not self.active:
            if len(self.stash) >= self._hub.backlog_limit:
                self.fail("too many events before the watch started")
            else:
                self.stash.append(event)
            return
        await self._send(event)

    async def activate(self) -> None:
        """Start delivering: the stashed events first (run after the answer was sent)."""
        while self.stash and not self.closed:
            await self._send(self.stash.popleft())
        self.active = True

    async def _send(self, event: StorageEvent) -> None:
        record = event.record
        assert record is not None
        kite = record.kite
        if event.action == REGISTER:
            if kite.id in self.known:
                return
            self.known[kite.id] = kite
            token = await self._hub.token_for(record, self)
            payload = {"action": REGISTER, "kite": kite.to_wire(), "url": record.url}
            payload["token"] = token
        else:
            if self.known.pop(kite.id, None) is None:
                return
            payload = {"action": DEREGISTER, "kite": kite.to_wire(), "token": ""}
        self.emit({"error": None, "result": payload})

    def emit(self, message: dict[str, Any]) -> None:
        """Call the caller's function, unless its connection is not keeping up."""
        if self.closed:
            return
        connection = self.client.connection
        if connection is None or connection.closed:
            self._hub.remove(self)
            return
        limit = self._hub.backlog_limit
        if connection.backlog > limit:
            self.fail(f"the connection has more than {limit} messages waiting; watch again")
            return
        byte_limit = self._hub.backlog_bytes_limit
        if connection.queued_bytes > byte_limit:
            self.fail(f"the connection has more than {byte_limit} bytes waiting; watch again")
            return
        try:
            self.callback(message)
        except KiteError as exc:  # the connection just closed
            logger.debug("%r: event not sent: %s", self, exc)
            self._hub.remove(self)

    def fail(self, reason: str) -> None:
        """Send one ``watchError`` and drop the watcher."""
        if self.closed:
            return
        logger.warning("%r dropped: %s", self, reason)
        error = {"type": WATCH_ERROR, "message": f"watcher {self.id} stopped: {reason}"}
        try:
            self.callback({"error": error, "result": None})
        except KiteError:
            pass
        self._hub.remove(self)


class WatchHub:
    """The watchers of one Kontrol, fed by its storage's change feed."""

    def __init__(self, kontrol: Kontrol) -> None:
        self._kontrol = kontrol
        self.watchers: dict[str, Watcher] = {}
        self._by_name: dict[str, set[Watcher]] = {}
        self._unnamed: set[Watcher] = set()
        self._by_client: dict[Client, set[Watcher]] = {}
        #: False when the storage has no change feed (watches are then refused).
        self.supported = True
        #: Set once the feed is live (tests and benchmarks wait for it).
        self.live = anyio.Event()

    def __len__(self) -> int:
        return len(self.watchers)

    @property
    def backlog_limit(self) -> int:
        return self._kontrol.settings.watch_backlog

    @property
    def backlog_bytes_limit(self) -> int:
        return self._kontrol.settings.watch_backlog_bytes

    # --- watchers ------------------------------------------------------------------------

    def add(self, client: Client, callback: Any, query: Query, username: str) -> Watcher:
        """A new, not yet active watcher (events are stashed until :meth:`Watcher.activate`)."""
        if not self.supported:
            raise GenericError("this Kontrol's storage cannot watch for changes")
        if client.connection is None or client.connection.closed:
            raise GenericError("the connection closed")
        watcher = Watcher(self, client, callback, query, username)
        self.watchers[watcher.id] = watcher
        if query.name:
            self._by_name.setdefault(query.name, set()).add(watcher)
        else:
            self._unnamed.add(watcher)
        watchers = self._by_client.get(client)
        if watchers is None:
            watchers = self._by_client[client] = set()
            client.on_disconnect(self._disconnected)
        watchers.add(watcher)
        return watcher

    def remove(self, watcher: Watcher) -> None:
        """Forget ``watcher``; idempotent."""
        watcher.closed = True
        watcher.stash.clear()
        watcher.known.clear()
        if self.watchers.pop(watcher.id, None) is None:
            return
        name = watcher.query.name
        if name:
            group = self._by_name.get(name)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self._by_name[name]
        else:
            self._unnamed.discard(watcher)
        owned = self._by_client.get(watcher.client)
        if owned is not None:
            owned.discard(watcher)

    def cancel(self, watcher_id: Any, client: Client) -> None:
        """``cancelWatcher``: only the connection that made a watcher may cancel it."""
        if not isinstance(watcher_id, str) or not watcher_id:
            raise GenericError("cancelWatcher expects a watcher id (a string)")
        watcher = self.watchers.get(watcher_id)
        if watcher is None:
            raise GenericError(f"Watcher not found: {watcher_id}")
        if watcher.client is not client:
            raise GenericError(f"Watcher {watcher_id} belongs to another connection")
        self.remove(watcher)

    def _disconnected(self, client: Client) -> None:
        for watcher in list(self._by_client.pop(client, ())):
            self.remove(watcher)

    async def token_for(self, record: KiteRecord, watcher: Watcher) -> str:
        kontrol = self._kontrol
        return await kontrol.tokens.token_for(
            record, watcher.query, subject=watcher.username, issuer=kontrol.username
        )

    def _candidates(self, kite: KiteIdentity) -> Iterable[Watcher]:
        named = self._by_name.get(kite.name)
        if named is None:
            return tuple(self._unnamed)
        return (*named, *self._unnamed)

    # --- the feed ------------------------------------------------------------------------

    async def run(self) -> None:
        """Read the storage's change feed until cancelled; reconnect with a pause on errors."""
        storage = self._kontrol.storage
        pause = 0.2
        first = True
        while True:
            try:
                async with storage.watch() as feed:
                    if not first:
                        logger.info("storage change feed is back; resynchronising watchers")
                    if self.watchers:  # made before the feed was live: they may have missed some
                        await self.resync()
                    first = False
                    pause = 0.2
                    self.live.set()
                    async for event in feed:
                        await self.dispatch(event)
            except WatchUnsupportedError as exc:
                self.supported = False
                self.live.set()
                logger.info("registry watches are off: %s", exc)
                return
            except StorageError as exc:
                if self._kontrol.storage is not storage:
                    return
                logger.warning("storage change feed failed (retrying in %gs): %s", pause, exc)
            except Exception:  # a backend's bug must not stop Kontrol: log it, go on
                logger.exception("storage change feed broke (retrying in %gs)", pause)
            first = False
            await anyio.sleep(pause)
            pause = min(pause * 2, 5.0)

    async def dispatch(self, event: StorageEvent) -> None:
        """Hand one storage event to every matching watcher."""
        if event.action == RESYNC:
            await self.resync()
            return
        record = event.record
        if record is None:
            return
        for watcher in self._candidates(record.kite):
            try:
                matches = watcher.query.matches(record.kite)
            except Exception:  # a query that cannot match is checked when the watch starts
                matches = False
            if matches:
                await watcher.offer(event)

    async def resync(self) -> None:
        """Compare every watcher's kites with the storage and send what changed."""
        storage = self._kontrol.storage
        by_query: dict[Query, list[Watcher]] = {}
        for watcher in list(self.watchers.values()):
            by_query.setdefault(watcher.query, []).append(watcher)
        for query, watchers in by_query.items():
            try:
                records = await storage.get(query)
            except StorageError as exc:
                logger.warning("resync of watchers of %s failed: %s", query, exc)
                for watcher in watchers:
                    watcher.fail("the registry could not be read again after a gap")
                continue
            current = {record.kite.id: record for record in records}
            for watcher in watchers:
                for kite_id, kite in list(watcher.known.items()):
                    if kite_id not in current:
                        await watcher.offer(StorageEvent(DEREGISTER, KiteRecord(kite, "", "")))
                for record in records:
                    await watcher.offer(StorageEvent(REGISTER, record))
