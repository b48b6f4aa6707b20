"""Turning heartbeats into storage refreshes (protocol.md §7.1, §7.5).

Over RPC, Kontrol asks a registered kite to ping it (``kite.heartbeat``, sent in the background
by :func:`ask_for_heartbeats` once ``register`` is answered, as Go does); each ping reaches a
:class:`HeartbeatTracker`, which refreshes the storage entry at most every ``update_interval``
and re-creates it when pings resume after a silence longer than ``heartbeat_interval +
heartbeat_delay``. Over HTTP, kites ``GET /heartbeat?id=``; :class:`HTTPHeartbeats` answers from
storage (not from one Kontrol's memory, so any Kontrol sharing the storage can answer) and
rate-limits refreshes the same way. Entries of kites that stop pinging expire by their TTL.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from kitecore.client import Client
from kitecore.protocol.errors import DisconnectError, KiteError, SendError
from kitecore.protocol.identity import KiteIdentity, Query
from kitecore.storage import RegisterValue, Storage, StorageError

from .settings import KontrolSettings

__all__ = ["HTTPHeartbeats", "HeartbeatTracker", "ask_for_heartbeats"]

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


def ask_for_heartbeats(
    client: Client, kite: KiteIdentity, tracker: HeartbeatTracker, interval: float, timeout: float
) -> None:
    """Call ``kite.heartbeat [interval, tracker.ping]`` on ``client`` in the background.

    Fire and log, as Go's Kontrol does: ``register`` is answered at once and never fails because
    of the heartbeat call. A kite that does not ping is not kept alive: its entry expires by its
    TTL. A kite that leaves before answering is normal (logged at DEBUG); any other failure is a
    WARNING.
    """
    connection = client.connection
    if connection is None:
        return
    try:
        connection.spawn(_call_heartbeat, client, kite, tracker, interval, timeout)
    except SendError as exc:  # the connection is closing already
        logger.debug("%s left before kite.heartbeat was sent: %s", kite, exc)


async def _call_heartbeat(
    client: Client, kite: KiteIdentity, tracker: HeartbeatTracker, interval: float, timeout: float
) -> None:
    try:
        await client.tell("kite.heartbeat", interval, tracker.ping, timeout=timeout)
    except (DisconnectError, SendError) as exc:
        logger.debug("%s left before answering kite.heartbeat: %s", kite, exc)
    except KiteError as exc:
        logger.warning(
            "kite.heartbeat on %s failed, its registration expires unless it pings: %s", kite, exc
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
