"""The storage change feed: what :meth:`kitecore.storage.Storage.watch` yields.

A backend pushes :class:`StorageEvent` objects into a :class:`ChangeFeed`; one consumer (a
Kontrol's watch hub) reads them with ``async for``. The queue is bounded: when the consumer
falls ``limit`` events behind, the queued events are dropped and replaced by one ``RESYNC``
event, which tells the consumer to read the registry again and compare. A backend that lost its
connection to the server, and may have missed changes, pushes ``RESYNC`` the same way after it
reconnected. So the feed never grows without bound and never loses a change silently.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:
    from kitecore.storage import KiteRecord

__all__ = ["DEREGISTER", "REGISTER", "RESYNC", "ChangeFeed", "StorageEvent"]

logger = logging.getLogger(__name__)

#: A kite id became live: registered for the first time, after it expired or was deleted, or
#: under another identity.
REGISTER = "REGISTER"
#: A live kite was deleted, expired, or replaced by another identity with the same id.
DEREGISTER = "DEREGISTER"
#: Changes may have been missed (the consumer fell behind, or the backend reconnected): read
#: the registry again.
RESYNC = "RESYNC"

#: How many events a feed holds before it collapses them into one ``RESYNC``.
DEFAULT_FEED_LIMIT = 65_536


@dataclass(frozen=True, slots=True)
class StorageEvent:
    """One change of the registry; ``record`` is ``None`` only for ``RESYNC``."""

    action: str
    record: KiteRecord | None = None

    def __repr__(self) -> str:
        kite = self.record.kite if self.record is not None else ""
        return f"StorageEvent({self.action} {kite})"


class ChangeFeed:
    """A bounded queue of :class:`StorageEvent` with one reader (see the module docs).

    :meth:`push` never blocks and may be called from synchronous code on the event loop's
    thread. :meth:`fail` ends the feed: the reader gets ``error`` after the queued events.
    ``tick``, if given, is called while the reader waits for events and returns how many
    seconds to wait before calling it again (``None``: until an event or :meth:`poke`); a
    backend uses it for work it does on the reader's time, such as noticing expiries.
    """

    def __init__(
        self,
        *,
        limit: int = DEFAULT_FEED_LIMIT,
        tick: Callable[[], float | None] | None = None,
    ) -> None:
        if limit < 2:
            raise ValueError("a change feed needs room for at least two events")
        self.limit = limit
        self._tick = tick
        self._events: deque[StorageEvent] = deque()
        self._wakeup: anyio.Event | None = None
        self._error: BaseException | None = None
        self._closed = False
        #: How many times the queue overflowed (for tests and logs).
        self.overflows = 0

    def __len__(self) -> int:
        return len(self._events)

    @property
    def closed(self) -> bool:
        return self._closed

    def push(self, event: StorageEvent) -> None:
        """Queue ``event``; on overflow replace everything queued with one ``RESYNC``."""
        if self._closed:
            return
        events = self._events
        if len(events) >= self.limit:
            self.overflows += 1
            logger.warning(
                "storage change feed: reader fell %d events behind; asking it to resync",
                len(events),
            )
            events.clear()
            events.append(StorageEvent(RESYNC))
        if event.action == RESYNC and events and events[-1].action == RESYNC:
            return
        events.append(event)
        self._wake()

    def resync(self) -> None:
        """Queue a ``RESYNC`` (changes may have been missed)."""
        self.push(StorageEvent(RESYNC))

    def fail(self, error: BaseException) -> None:
        """End the feed with ``error`` (raised to the reader once the queue is empty)."""
        if self._closed:
            return
        self._error = error
        self._closed = True
        self._wake()

    def close(self) -> None:
        """End the feed normally: the reader's ``async for`` ends once the queue is empty."""
        self._closed = True
        self._wake()

    def poke(self) -> None:
        """Wake a waiting reader so that it calls ``tick`` again."""
        self._wake()

    def _wake(self) -> None:
        wakeup = self._wakeup
        if wakeup is not None:
            self._wakeup = None
            wakeup.set()

    def get_nowait(self) -> StorageEvent | None:
        """The next queued event, or ``None``."""
        return self._events.popleft() if self._events else None

    def __aiter__(self) -> ChangeFeed:
        return self

    async def __anext__(self) -> StorageEvent:
        while not self._events:
            if self._closed:
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            wait = self._tick() if self._tick is not None else None
            if self._events or self._closed:
                continue  # the tick produced events (or ended the feed)
            wakeup = self._wakeup = anyio.Event()
            if wait is None:
                await wakeup.wait()
            else:
                with anyio.move_on_after(max(0.0, wait)):
                    await wakeup.wait()
        return self._events.popleft()
