"""Leases shared by the registrations of one second: one lease grant per second, not per kite.

A lease grant is an etcd round trip and a raft proposal (a WAL write) of its own; granting one
per registration cost as much as the registration's transaction. Instead, registrations with
the same lease TTL written within one *window* (:data:`WINDOW` seconds) share a lease granted
at the window's start with :data:`WINDOW` more seconds than the TTL asks. An entry written at
``t`` on the lease granted at ``g`` (``t - WINDOW < g <= t``) therefore lives at least ``ttl``
seconds and at most ``WINDOW`` seconds longer, and every entry on a lease was written within one
window: a kite that stops refreshing disappears by its lease running out, just as with a lease
of its own, never kept alive by another kite. So a shared lease is never kept alive or revoked
for one kite: a refresh moves the kite's keys to the current window's lease, a delete deletes
them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

__all__ = ["WINDOW", "WindowLeases"]

#: Seconds during which new entries share one lease.
WINDOW = 1.0


class WindowLeases:
    """The current window's lease per entry TTL (whole seconds), granted through
    ``grant(seconds) -> lease id`` for ``ttl + WINDOW`` seconds.

    Concurrent callers in a window without a lease share one grant.
    """

    def __init__(
        self,
        grant: Callable[[int], Awaitable[int]],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._grant = grant
        self._clock = clock
        self._current: dict[int, tuple[float, int]] = {}  # lease TTL -> (window start, lease)
        self._granting: dict[int, asyncio.Future[tuple[float, int]]] = {}

    async def lease(self, ttl: int) -> int:
        """A lease of ``ttl + WINDOW`` seconds granted less than :data:`WINDOW` seconds ago."""
        now = self._clock()
        current = self._current.get(ttl)
        if current is not None and now - current[0] < WINDOW:
            return current[1]
        pending = self._granting.get(ttl)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._granting[ttl] = pending
            try:
                started = self._clock()  # before the request: the lease's clock starts later
                granted = (started, await self._grant(ttl + math.ceil(WINDOW)))
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: waiters, if any, see it too
                raise
            finally:
                del self._granting[ttl]
            self._current[ttl] = granted
            pending.set_result(granted)
            return granted[1]
        return (await asyncio.shield(pending))[1]

    def forget(self, lease: int) -> None:
        """``lease`` is gone from etcd (revoked by hand, lost): grant a new one next time."""
        for ttl, (_, current) in list(self._current.items()):
            if current == lease:
                del self._current[ttl]
