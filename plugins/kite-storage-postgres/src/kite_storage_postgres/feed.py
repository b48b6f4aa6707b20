"""The PostgreSQL storage's change feed: LISTEN/NOTIFY, with a catch-up after a reconnect.

A trigger on the kite table (migration 4) notifies every change on the channel
:func:`channel_for` of the schema, in the writing transaction, so every Kontrol sharing the
database hears every write: ``REGISTER`` for an insert, for taking over an expired row and for a
changed identity (after ``DEREGISTER`` of the old one); ``DEREGISTER`` for a delete. A refresh of
a live kite is silent. Expired rows are announced when they are deleted: while a feed is open
its storage deletes expired rows every ``expiry_interval`` seconds (as the background cleaner
does, rows locked by a heartbeat are skipped).

The feed listens on a connection of its own. When that connection is lost, NOTIFY messages sent
meanwhile are gone, so after reconnecting (with a growing pause) the feed pushes ``RESYNC``:
the reader reads the registry again and compares (the catch-up), and nothing is missed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any

import asyncpg

from kitecore.protocol.identity import KiteIdentity
from kitecore.storage import (
    DEREGISTER,
    REGISTER,
    ChangeFeed,
    KiteRecord,
    StorageError,
    StorageEvent,
)

from .errors import map_error

if TYPE_CHECKING:
    from .storage import PostgresStorage

__all__ = ["PostgresFeed", "channel_for", "parse_notification"]

logger = logging.getLogger(__name__)

_IDENTITY_FIELDS = ("username", "environment", "name", "version", "region", "hostname", "id")


def channel_for(schema: str) -> str:
    """The NOTIFY channel of ``schema`` (the trigger computes the same name)."""
    return "kite_changes_" + hashlib.md5(schema.encode()).hexdigest()[:16]


def parse_notification(payload: str) -> StorageEvent:
    """A trigger's JSON payload as a :class:`StorageEvent`; :class:`StorageError` if malformed."""
    try:
        obj: Any = json.loads(payload)
        action = obj["action"]
        if action not in (REGISTER, DEREGISTER):
            raise ValueError(f"unknown action {action!r}")
        kite = KiteIdentity(**{name: str(obj[name]) for name in _IDENTITY_FIELDS})
        return StorageEvent(action, KiteRecord(kite, str(obj["url"]), str(obj["key_id"])))
    except (ValueError, KeyError, TypeError) as exc:
        raise StorageError(f"unreadable kite change notification: {exc}") from None


class PostgresFeed:
    """Listens for one storage's changes and pushes them into a :class:`ChangeFeed`."""

    def __init__(self, storage: PostgresStorage, feed: ChangeFeed) -> None:
        self._storage = storage
        self.feed = feed
        self.channel = channel_for(storage.options.schema)
        self._connection: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        #: How many times the listening connection was opened again (for tests and logs).
        self.reconnects = 0

    async def start(self) -> None:
        """Connect and LISTEN (the feed is live from here); :class:`StorageError` if it can't."""
        await self._storage.connect()  # the pool, and the schema with its trigger
        await self._listen()

    async def _listen(self) -> None:
        options = self._storage.options
        try:
            connection = await asyncpg.connect(
                options.dsn(),
                timeout=options.connect_timeout,
                command_timeout=options.command_timeout,
            )
        except Exception as exc:
            raise map_error(exc, "listen", options.dsn(redact=True)) from exc
        self._lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: self._lost.set())
        try:
            await connection.add_listener(self.channel, self._notified)
        except Exception as exc:
            connection.terminate()
            raise map_error(exc, "listen", options.dsn(redact=True)) from exc
        self._connection = connection

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            event = parse_notification(payload)
        except StorageError as exc:
            logger.warning("postgres change feed: %s", exc)
            self.feed.resync()
            return
        self.feed.push(event)

    async def run(self) -> None:
        """Keep listening and purging expired rows until cancelled."""
        storage = self._storage
        interval = storage.expiry_interval
        pause = 0.1
        while True:
            if storage.closed:
                self.feed.fail(StorageError("the postgres storage is closed"))
                return
            if self._connection is None or self._connection.is_closed():
                try:
                    await self._listen()
                except StorageError as exc:
                    logger.warning("postgres change feed: reconnect failed (%s); retrying", exc)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)
                    continue
                self.reconnects += 1
                pause = 0.1
                logger.info("postgres change feed: listening again; catching up")
                self.feed.resync()
            try:
                await asyncio.wait_for(self._lost.wait(), interval)
            except TimeoutError:
                pass
            if self._lost.is_set():
                logger.warning("postgres change feed: listening connection lost")
                self._drop()
                continue
            try:
                await storage.purge_expired()  # expired kites are announced as they go
            except StorageError as exc:
                logger.debug("postgres change feed: purge failed: %s", exc)

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            connection.terminate()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            try:
                await asyncio.wait_for(connection.close(), 2)
            except Exception:  # closing a broken connection
                connection.terminate()
