"""Turning heartbeats into storage refreshes (protocol.md §7.1, §7.5).

Over RPC, Kontrol asks a registered kite to ping it (``kite.heartbeat``, sent by
:class:`HeartbeatCalls` without waiting for the answer, as Go does); each ping reaches a
:class:`HeartbeatTracker`, which refreshes the storage entry at most every ``update_interval``
and re-creates it when pings resume after a silence longer than ``heartbeat_interval +
heartbeat_delay``. Over HTTP, kites ``GET /heartbeat?id=``; :class:`HTTPHeartbeats` answers from
storage (not from one Kontrol's memory, so any Kontrol sharing the storage can answer) and
rate-limits refreshes the same way. Entries of kites that stop pinging expire by their TTL.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import anyio

from kitecore.client import Client
from kitecore.connection import Connection
from kitecore.protocol.envelope import RequestEncoder
from kitecore.protocol.errors import DisconnectError, KiteError, KiteTimeoutError, SendError
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.storage import RegisterValue, Storage, StorageError

from .settings import KontrolSettings

__all__ = ["HTTPHeartbeats", "HeartbeatCalls", "HeartbeatTracker"]

logger = logging.getLogger(__name__)

Spawn = Callable[..., None]


class HeartbeatTracker:
    """Refreshes one kite's registration as its pings arrive.

    ``spawn(function, *args)`` runs the storage write in the background (the connection's task
    group), so a slow storage never holds up the connection's callbacks.
    """

    def __init__(
        self,
        storage: Storage,
        kite: KiteIdentity,
        value: RegisterValue,
        settings: KontrolSettings,
        spawn: Spawn,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._storage = storage
        self._kite = kite
        self._value = value
        self._settings = settings
        self._spawn = spawn
        self._clock = clock
        now = clock()
        self._last_ping = now
        self._last_write = now
        self._writing = False

    def ping(self, *_args: Any) -> None:
        """The callback handed to ``kite.heartbeat``."""
        now = self._clock()
        silence = now - self._last_ping
        self._last_ping = now
        if self._writing:
            return
        lost = silence > self._settings.heartbeat_interval + self._settings.heartbeat_delay
        if lost or now - self._last_write >= self._settings.update_interval:
            self._writing = True
            try:
                self._spawn(self._write, lost)
            except Exception as exc:  # the connection is closing
                self._writing = False
                logger.debug("heartbeat of %s not recorded: %s", self._kite, exc)

    async def _write(self, recreate: bool) -> None:
        try:
            if recreate:
                logger.info("heartbeats of %s resumed; registering it again", self._kite)
            if recreate or not await self._storage.update(
                self._kite, self._value, ttl=self._settings.key_ttl
            ):
                await self._storage.upsert(self._kite, self._value, ttl=self._settings.key_ttl)
            self._last_write = self._clock()
        except StorageError as exc:
            logger.warning("storage refresh of %s failed: %s", self._kite, exc)
        finally:
            self._writing = False


class _HeartbeatCall:
    """One ``kite.heartbeat`` call waiting for its answer; the connection hands the answer (or
    its end) to this object as the call's waiter, so nothing waits in a task."""

    __slots__ = ("callback_id", "connection", "deadline", "kite")

    def __init__(
        self, connection: Connection, callback_id: int, kite: KiteIdentity, deadline: float
    ) -> None:
        self.connection: Connection | None = connection
        self.callback_id = callback_id
        self.kite = kite
        self.deadline = deadline

    def set_result(self, _value: Any) -> None:
        self.connection = None

    def set_exception(self, error: BaseException) -> None:
        if self.connection is None:
            return
        self.connection = None
        if isinstance(error, (DisconnectError, SendError)):
            logger.debug("%s left before answering kite.heartbeat: %s", self.kite, error)
        else:
            logger.warning(
                "kite.heartbeat on %s failed, its registration expires unless it pings: %s",
                self.kite,
                error,
            )

    def done(self) -> bool:
        return self.connection is None

    async def wait(self, timeout: float | None = None) -> Any:  # pragma: no cover - unused
        raise NotImplementedError("a heartbeat call is never awaited")


class HeartbeatCalls:
    """Kontrol's ``kite.heartbeat [interval, ping]`` calls on registered kites.

    Fire and log, as Go's Kontrol does: ``register`` is answered at once and never fails because
    of the heartbeat call, and no task waits for each call (one per registration): the answer,
    or the connection's end, resolves the call where it arrives, and :meth:`run` (one task for
    the whole Kontrol) gives up on calls still unanswered after ``timeout`` seconds, so one never
    keeps a connection busy. A kite that does not ping is not kept alive: its entry expires by
    its TTL. A kite that leaves before answering is normal (logged at DEBUG); any other failure,
    a timeout included, is a WARNING.
    """

    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._timeout = timeout
        self._clock = clock
        self._calls: deque[_HeartbeatCall] = deque()  # in deadline order: one timeout for all
        self._wake: anyio.Event | None = None  # set while run() waits for a first call
        self._encoder: tuple[object, object, RequestEncoder] | None = None

    def ask(
        self, client: Client, kite: KiteIdentity, tracker: HeartbeatTracker, interval: float
    ) -> None:
        """Call ``kite.heartbeat [interval, tracker.ping]`` on ``client`` without waiting."""
        connection = client.connection
        if connection is None:
            return
        try:
            with_args, user_callbacks = connection.scrub([interval, tracker.ping])
            callbacks = {key: [0, "withArgs", *path] for key, path in user_callbacks.items()}
            pending, callback_id = connection.call(
                "kite.heartbeat", self._encoder_for(client), with_args, callbacks
            )
        except SendError as exc:  # the connection is closing already
            logger.debug("%s left before kite.heartbeat was sent: %s", kite, exc)
            return
        except KiteError as exc:
            logger.warning("kite.heartbeat on %s not sent: %s", kite, exc)
            return
        call = _HeartbeatCall(connection, callback_id, kite, self._clock() + self._timeout)
        pending.waiter = call  # the answer goes to the call; nothing awaits it
        if not self._calls and self._wake is not None:
            self._wake.set()
        self._calls.append(call)

    def _encoder_for(self, client: Client) -> RequestEncoder:
        """Kontrol's request encoder (its identity and auth), made again when they change."""
        identity, auth = client.kite.identity_wire, client.auth
        cached = self._encoder
        if cached is None or cached[0] is not identity or cached[1] is not auth:
            encoder = RequestEncoder(identity, None if auth is None else auth.to_wire())
            cached = self._encoder = (identity, auth, encoder)
        return cached[2]

    @property
    def pending(self) -> int:
        """Calls sent and not yet answered, failed or given up."""
        return sum(1 for call in self._calls if not call.done())

    async def run(self) -> None:
        """Give up on calls unanswered after the timeout (forever; cancel to stop)."""
        calls = self._calls
        while True:
            if not calls:
                self._wake = anyio.Event()
                await self._wake.wait()
                self._wake = None
                continue
            call = calls[0]
            delay = call.deadline - self._clock()
            if delay > 0:
                await anyio.sleep(delay)
                continue
            calls.popleft()
            connection = call.connection
            if connection is not None:
                connection.forget_callback(call.callback_id)
                timeout = self._timeout
                call.set_exception(
                    KiteTimeoutError(f'No response to "kite.heartbeat" method in {timeout:g}s')
                )


class HTTPHeartbeats:
    """Answers ``GET /heartbeat?id=``: ``pong`` for a live kite, ``registeragain`` otherwise."""

    def __init__(
        self,
        storage: Storage,
        settings: KontrolSettings,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_tracked: int = 100_000,
    ) -> None:
        self._storage = storage
        self._settings = settings
        self._clock = clock
        self._max_tracked = max_tracked
        self._last_write: dict[str, float] = {}

    def registered(self, kite_id: str) -> None:
        """A kite just (re-)registered over HTTP: its entry is fresh."""
        self._remember(kite_id, self._clock())

    async def beat(self, kite_id: str) -> str:
        """Handle one heartbeat; returns the response body."""
        records = await self._storage.get(Query(id=kite_id))
        if not records:
            self._last_write.pop(kite_id, None)
            return "registeragain"
        now = self._clock()
        if now - self._last_write.get(kite_id, -float("inf")) >= self._settings.update_interval:
            record = records[0]
            value = RegisterValue(record.url, record.key_id)
            if not await self._storage.update(record.kite, value, ttl=self._settings.key_ttl):
                return "registeragain"
            self._remember(kite_id, now)
        return "pong"

    def _remember(self, kite_id: str, when: float) -> None:
        if len(self._last_write) >= self._max_tracked:
            horizon = when - self._settings.key_ttl
            self._last_write = {k: t for k, t in self._last_write.items() if t > horizon}
        self._last_write[kite_id] = when
