"""How many connections a server holds, and accepting without dying when descriptors run out.

:class:`ConnectionLimits` counts open connections, in all and per peer address, and says
which new ones to turn away; :func:`accept_forever` accepts from one listener and survives
``EMFILE``/``ENFILE`` (descriptor exhaustion) by backing off, logging once per burst.
"""

from __future__ import annotations

import errno
import logging
import resource
from collections.abc import Awaitable, Callable

import anyio
from anyio.abc import SocketListener, SocketStream

__all__ = ["ConnectionLimits", "accept_forever", "descriptor_headroom_limit"]

logger = logging.getLogger(__name__)

#: accept() errors that mean "out of descriptors or memory for now": back off, retry.
_EXHAUSTED = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
#: accept() errors about one connection that died in the backlog: just accept the next.
_TRANSIENT = frozenset((errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR))
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 1.0


def descriptor_headroom_limit() -> int | None:
    """The most connections this process can hold and still have descriptors left for the
    rest of its work (the listener, outgoing connections, files, turning new peers away):
    the soft ``RLIMIT_NOFILE`` less a reserve of a tenth of it, at least 64. None if
    unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    return max(1, soft - max(64, soft // 10))


class ConnectionLimits:
    """Open connections in all (at most ``max_connections``; 0 means no limit) and per peer
    host (at most ``max_per_ip``; 0 means no limit)."""

    __slots__ = ("_per_ip", "max_connections", "max_per_ip", "open")

    def __init__(self, max_connections: int, max_per_ip: int = 0) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.open = 0
        self._per_ip: dict[str, int] = {}

    def admit(self, host: str) -> str | None:
        """Count a new connection from ``host`` and return None, or the reason to refuse it
        (then nothing is counted)."""
        if self.max_connections and self.open >= self.max_connections:
            return f"server at its limit of {self.max_connections} open connections"
        if self.max_per_ip:
            count = self._per_ip.get(host, 0)
            if count >= self.max_per_ip:
                return f"{host} has {count} open connections (the limit per address)"
            self._per_ip[host] = count + 1
        self.open += 1
        return None

    def release(self, host: str) -> None:
        """A connection :meth:`admit` counted has ended."""
        self.open -= 1
        if self.max_per_ip:
            count = self._per_ip.get(host, 0) - 1
            if count > 0:
                self._per_ip[host] = count
            else:
                self._per_ip.pop(host, None)


async def accept_forever(
    listener: SocketListener, on_accept: Callable[[SocketStream], Awaitable[None]]
) -> None:
    """Accept from ``listener`` until cancelled and await ``on_accept(stream)`` for each
    (it must return quickly: start a task for the connection).

    When the process (or system) is out of descriptors, accepting waits a little and tries
    again, up to a second between tries, while the connections already open are served; a
    warning is logged when it starts and a note when accepting works again.
    """
    failures = 0
    backoff = _FIRST_BACKOFF
    while True:
        try:
            stream = await listener.accept()
        except OSError as exc:
            if exc.errno in _TRANSIENT:
                continue
            if exc.errno not in _EXHAUSTED:
                raise
            if not failures:
                logger.warning(
                    "cannot accept connections (%s); retrying, open connections are served", exc
                )
            failures += 1
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            continue
        if failures:
            logger.warning("accepting connections again after %d failed attempts", failures)
            failures = 0
            backoff = _FIRST_BACKOFF
        await on_accept(stream)
