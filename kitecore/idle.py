"""Closing idle connections: one sweeper per kite over the connections it accepted.

A connection is *idle* while no dnode message passes either way and no call is in flight on
it (:attr:`kitecore.connection.Connection.in_flight`: a call the peer made that is queued or
being served, a call the kite made that waits for its reply, a callback the peer invoked that
is still running). Callbacks merely held -- a ``kite.heartbeat`` ``ping``, a watch handler --
do not keep a connection open, but every invocation of one is a message, so a heartbeat
does. After ``idle_timeout`` seconds idle, the connection is closed with close code 1001 and
the reason ``"idle timeout"`` (WebSocket close frame; SockJS ``c[1001,"idle timeout"]``).

Only accepted connections are swept; connections the kite dialed itself and those marked
``keep_when_idle`` stay. The sweeper looks every quarter of the timeout and compares the
connections' message counters, so the message path pays nothing and a connection is closed
between 1 and 1¼ timeouts after it went quiet.

WebSocket pings are a separate matter (``kitecore.http``): they detect dead peers, and a pong
is not a message, so a peer that only answers pings is idle here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import anyio

from kitecore.connection import Connection

logger = logging.getLogger(__name__)

#: Close code and reason an idle connection gets (1001: "going away", RFC 6455 §7.4.1).
IDLE_CLOSE_CODE = 1001
IDLE_CLOSE_REASON = "idle timeout"


def idle_connections(
    connections: Iterable[Connection], timeout: float, now: float
) -> list[Connection]:
    """The connections among ``connections`` idle for ``timeout`` seconds at ``now``
    (advances each connection's idle clock: call it with a growing ``now``)."""
    return [
        connection
        for connection in connections
        if not connection.closed
        and not connection.dialed
        and not connection.keep_when_idle
        and connection.quiet_for(now) >= timeout
    ]


async def close_idle_connections(
    connections: Callable[[], Iterable[Connection]],
    timeout: float,
    spawn: Callable[[Connection], object],
) -> None:
    """Forever: every quarter of ``timeout``, hand each connection of ``connections()`` that
    has been idle for ``timeout`` seconds to ``spawn`` (which closes it in the background)."""
    while True:
        await anyio.sleep(timeout / 4)
        for connection in idle_connections(connections(), timeout, time.monotonic()):
            logger.debug("%r: idle for %gs, closing", connection, timeout)
            spawn(connection)


async def close_idle(connection: Connection) -> None:
    """Close ``connection`` for being idle: close code 1001, reason ``"idle timeout"``."""
    await connection.close(IDLE_CLOSE_REASON, code=IDLE_CLOSE_CODE)
