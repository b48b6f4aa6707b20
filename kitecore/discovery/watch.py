"""Watching Kontrol's registry: :class:`KiteWatch` (``kite.watch_kites(query)``).

>>> async with kite.watch_kites(username="alice", name="math") as watch:
...     async for event in watch:
...         if event.action == "REGISTER":
...             async with event.client:                     # dialed here
...                 print(await event.client.tell("square", 3))
...         else:
...             print(event.kite, "left")

The kites that match when the watch starts come first (``event.initial`` is true), then every
arrival and departure as Kontrol reports it (protocol.md §15: ``getKites`` with a
``watchHandler``). The watch keeps itself right without the caller's help:

* When the connection to Kontrol drops, the watch subscribes again once it is back and compares
  Kontrol's answer with what it reported: kites that left meanwhile come as ``DEREGISTER``, new
  ones as ``REGISTER``, and nothing is reported twice.
* When Kontrol says the watch fell behind (a ``watchError``), or the caller does not take
  events fast enough to stay under ``max_queue``, it resubscribes the same way.
* A Kontrol that answers without a ``watcherID`` (Go's, whose watcher code is disabled) is polled
  every ``poll_interval`` seconds instead, with the same comparison; :attr:`KiteWatch.pushed`
  says which it is.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from kitecore.backoff import Backoff
from kitecore.discovery.messages import KiteRecord, parse_get_kites_result
from kitecore.protocol.errors import ArgumentError, KiteError
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.taskgroups import OwnedTaskGroup

if TYPE_CHECKING:
    from kitecore.client import Client
    from kitecore.discovery.kontrol import KontrolClient

__all__ = ["DEREGISTER", "REGISTER", "KiteEvent", "KiteWatch"]

logger = logging.getLogger(__name__)

REGISTER = "REGISTER"
DEREGISTER = "DEREGISTER"

#: How often a Kontrol without watches (Go's) is asked again.
DEFAULT_POLL_INTERVAL = 5.0


@dataclass(frozen=True, slots=True)
class KiteEvent:
    """A kite that started (``REGISTER``) or stopped (``DEREGISTER``) matching the query.

    For ``REGISTER``, ``url`` is where it serves and ``client`` a client for it (not dialed yet:
    ``async with event.client:`` or ``await event.client.dial()``) carrying a Kontrol token
    that is renewed while connected. ``initial`` marks the kites that matched when the
    watch started.
    """

    action: str
    kite: KiteIdentity
    url: str = ""
    client: Client | None = field(default=None, repr=False, compare=False)
    initial: bool = False


class KiteWatch:
    """Arrivals and departures of the kites matching ``query`` (see the module docs).

    Use with ``async with`` and iterate with ``async for``; leaving the block cancels the watch
    on Kontrol. ``max_queue`` bounds the events waiting for the caller.
    """

    def __init__(
        self,
        kontrol: KontrolClient,
        query: Query,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        max_queue: int = 10_000,
    ) -> None:
        if not poll_interval > 0:
            raise ArgumentError("poll_interval must be positive")
        if max_queue < 1:
            raise ArgumentError("max_queue must be at least 1")
        self.kontrol = kontrol
        self.query = query
        self.poll_interval = poll_interval
        self.max_queue = max_queue
        #: The watcher id Kontrol gave, ``""`` while polling.
        self.watcher_id = ""
        #: True when Kontrol pushes changes, False when it is polled (no ``watcherID``).
        self.pushed = False
        #: How many times the watch subscribed again (reconnects, watchErrors, overflows).
        self.resubscriptions = 0
        self._known: dict[str, KiteIdentity] = {}  # as queued for the caller
        self._delivered: dict[str, KiteIdentity] = {}  # as the caller has seen
        self._events: deque[KiteEvent] = deque()
        self._early: list[dict[str, Any]] | None = None
        self._generation = 0
        self._wakeup: anyio.Event | None = None
        self._resync = anyio.Event()
        self._connection: Any = None
        self._tasks = OwnedTaskGroup()
        self._closed = False

    def __repr__(self) -> str:
        mode = f"watcher {self.watcher_id}" if self.pushed else "polling"
        return f"<KiteWatch {self.query} ({mode})>"

    @property
    def known(self) -> dict[str, KiteIdentity]:
        """The kites currently matching, by id, as far as the events delivered so far tell."""
        return dict(self._known)

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> KiteWatch:
        await self._subscribe(initial=True)
        await self._tasks.open()
        self._tasks.start_soon(self._maintain)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Cancel the watch on Kontrol (best effort) and stop. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._generation += 1
        self._wake()
        await self._tasks.aclose()
        watcher_id, self.watcher_id = self.watcher_id, ""
        if watcher_id and self._connection is not None and not self._connection.closed:
            with anyio.move_on_after(self.kontrol.kite.config.timeout, shield=True):
                try:
                    await self.kontrol.call("cancelWatcher", watcher_id)
                except (KiteError, OSError) as exc:
                    logger.debug("%r: cancelWatcher failed: %s", self, exc)

    # ------------------------------------------------------------ iterating

    def __aiter__(self) -> KiteWatch:
        return self

    async def __anext__(self) -> KiteEvent:
        while not self._events:
            if self._closed:
                raise StopAsyncIteration
            wakeup = self._wakeup = anyio.Event()
            await wakeup.wait()
        event = self._events.popleft()
        if event.action == REGISTER:
            self._delivered[event.kite.id] = event.kite
        else:
            self._delivered.pop(event.kite.id, None)
        return event

    def _wake(self) -> None:
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            wakeup.set()

    def _emit(self, event: KiteEvent) -> None:
        if len(self._events) >= self.max_queue:
            logger.warning("%r: %d events not taken; resynchronising", self, len(self._events))
            self._events.clear()
            self._known = dict(self._delivered)  # the resync starts from what the caller saw
            self._generation += 1  # ignore the rest of this subscription
            self._resync.set()
            return
        self._events.append(event)
        self._wake()

    # ------------------------------------------------------------ subscribing

    async def _subscribe(self, *, initial: bool = False) -> None:
        """Ask Kontrol for the matching kites (with a watch unless polling), and report the
        difference with what was reported so far."""
        old = self.watcher_id
        if old and self._connection is not None and not self._connection.closed:
            self.watcher_id = ""
            try:  # still alive on Kontrol (we resync after falling behind): stop it first
                await self.kontrol.call("cancelWatcher", old)
            except KiteError as exc:
                logger.debug("%r: cancelWatcher %s: %s", self, old, exc)
        self._generation += 1
        generation = self._generation
        args: dict[str, Any] = {"query": self.query.to_wire()}
        watching = initial or self.pushed
        if watching:
            args["watchHandler"] = _Handler(self, generation)
            self._early = []
        try:
            result = await self.kontrol.call("getKites", args)
            records = parse_get_kites_result(result)
        except BaseException:
            self._early = None
            raise
        client = self.kontrol.client
        self._connection = client.connection if client is not None else None
        watcher_id = result.get("watcherID") if isinstance(result, dict) else None
        if watching:
            self.pushed = isinstance(watcher_id, str) and bool(watcher_id)
            self.watcher_id = str(watcher_id) if self.pushed else ""
        current = {record.kite.id: record for record in records}
        for kite_id, kite in list(self._known.items()):
            if kite_id not in current:
                del self._known[kite_id]
                self._emit(KiteEvent(DEREGISTER, kite))
        for record in records:
            if record.kite.id not in self._known:
                self._known[record.kite.id] = record.kite
                self._emit(self._register_event(record, initial=initial))
        early, self._early = self._early, None
        for message in early or ():
            self._on_message(generation, message)

    def _register_event(self, record: KiteRecord, *, initial: bool = False) -> KiteEvent:
        client = self.kontrol.client_for_record(record)
        return KiteEvent(REGISTER, record.kite, record.url, client, initial)

    def _on_message(self, generation: int, message: Any) -> None:
        """One call of the watch function: ``{"error": ..., "result": EVENT}``."""
        if generation != self._generation or self._closed:
            return  # a subscription replaced since
        if self._early is not None:
            self._early.append(message)
            return
        if not isinstance(message, dict):
            logger.warning("%r: ignored a malformed watch message %r", self, message)
            return
        error = message.get("error")
        if error:
            logger.warning("%r: Kontrol stopped the watch (%s); subscribing again", self, error)
            self.watcher_id = ""
            self._resync.set()
            return
        event: Any = message.get("result")  # the peer's JSON: checked by the lookups below
        try:
            action = event["action"]
            kite = KiteIdentity.from_wire(event["kite"])
        except (TypeError, KeyError, ArgumentError) as exc:
            logger.warning("%r: ignored a malformed watch event %r: %s", self, event, exc)
            return
        if action == REGISTER:
            if kite.id in self._known:
                return
            url, token = event.get("url"), event.get("token")
            if not isinstance(url, str) or not url:
                logger.warning("%r: ignored a REGISTER without a URL: %r", self, event)
                return
            self._known[kite.id] = kite
            record = KiteRecord(kite, url, token if isinstance(token, str) else "")
            self._emit(self._register_event(record))
        elif action == DEREGISTER:
            if self._known.pop(kite.id, None) is not None:
                self._emit(KiteEvent(DEREGISTER, kite))
        else:
            logger.warning("%r: ignored a watch event with action %r", self, action)

    async def _maintain(self) -> None:
        """Resubscribe after a lost connection or a watchError; poll when Kontrol can't push."""
        backoff = Backoff(initial=0.1, multiplier=2.0, randomization=0.3, maximum=5.0)
        while True:
            if self.pushed:
                await self._wait_for_trouble()
            else:
                with anyio.move_on_after(self.poll_interval):
                    await self._resync.wait()
            self._resync = anyio.Event()
            while True:
                try:
                    await self._subscribe()
                except (KiteError, OSError, ValueError) as exc:
                    delay = backoff.next()
                    logger.info(
                        "%r: subscribing again failed (%s); retry in %.1fs", self, exc, delay
                    )
                    await anyio.sleep(delay)
                    continue
                backoff.reset()
                if self.pushed:
                    self.resubscriptions += 1
                break

    async def _wait_for_trouble(self) -> None:
        """Return when the connection the watch lives on closed, or a resync was asked for."""
        connection = self._connection
        async with anyio.create_task_group() as group:

            async def closed() -> None:
                if connection is not None:
                    await connection.wait_closed()
                    logger.info("%r: connection to Kontrol lost; subscribing again", self)
                    group.cancel_scope.cancel()
                else:
                    await anyio.sleep_forever()

            group.start_soon(closed)
            await self._resync.wait()
            group.cancel_scope.cancel()


class _Handler:
    """The function Kontrol calls (bound to one subscription)."""

    __slots__ = ("generation", "watch")

    def __init__(self, watch: KiteWatch, generation: int) -> None:
        self.watch = watch
        self.generation = generation

    def __call__(self, *args: Any) -> None:
        self.watch._on_message(self.generation, args[0] if args else None)
