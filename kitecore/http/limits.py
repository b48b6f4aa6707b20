"""How many connections a server holds, and accepting without dying when descriptors run out.

:class:`ConnectionLimits` counts open connections, in all and per peer address, and says
which new ones to turn away; :func:`accept_forever` accepts from one listener and survives
``EMFILE``/``ENFILE`` (descriptor exhaustion) by backing off, logging once per burst.
:func:`release_free_memory` and :class:`Renewal` give memory back after a crowd has gone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import gc
import logging
import resource
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio

__all__ = [
    "ConnectionLimits",
    "Renewal",
    "accept_forever",
    "descriptor_headroom_limit",
    "release_free_memory",
]

logger = logging.getLogger(__name__)

#: accept() errors that mean "out of descriptors or memory for now": back off, retry.
_EXHAUSTED = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
#: accept() errors about one connection that died in the backlog: just accept the next.
_TRANSIENT = frozenset((errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR))
_FIRST_BACKOFF = 0.05
_MAX_BACKOFF = 1.0
#: Seconds accepting must work before another failure counts as a new burst.
_BURST_QUIET = 2.0
#: The fewest open connections at a peak for free memory to be handed back to the system
#: once at most an eighth of them remain (below that, there is little to hand back).
_TRIM_PEAK = 64


def _find_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None (another C library, another system)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_malloc_trim = _find_malloc_trim()

_T = TypeVar("_T")


def release_free_memory() -> None:
    """Give free memory back to the system after a crowd of connections has gone.

    A full garbage collection (it also empties the interpreter's free lists, which is
    what lets most of the crowd's memory go; measured: a kite back from 84 to 43 MB after
    10,000 connections, at a pause of some 60 ms), then glibc's ``malloc_trim`` (glibc
    keeps freed memory in its heap for reuse; elsewhere this step is skipped).
    """
    gc.collect()
    if _malloc_trim is not None:
        _malloc_trim(0)


class Renewal:
    """Long waits (a listener's pending accept) that can be made anew.

    CPython's small-object allocator (pymalloc) holds memory in 1 MiB arenas and gives an
    arena back only once every object in it is gone. A wait that starts while a crowd of
    connections is there (the listener's next accept, a timer) allocates its future, handle
    and timer among the crowd's objects, and outlives the crowd: each such object keeps a
    whole arena. :meth:`renew`, called once the crowd has gone, ends every wait run through
    :meth:`wait` early; its owner starts it again (the accept is tried anew), so its objects
    are made again, now among the long-lived ones, and the arenas the old ones kept can be
    released. (Not for sleeps: a cancelled timer stays in asyncio's heap until its time.)
    """

    __slots__ = ("_scopes",)

    def __init__(self) -> None:
        self._scopes: set[anyio.CancelScope] = set()

    async def wait(self, waiting: Awaitable[object]) -> bool:
        """Await ``waiting``: True when it is done, False when :meth:`renew` ended it first
        (then the caller waits again, with fresh objects). It must lose nothing when
        cancelled (a wait for readiness or for a time, not an accept)."""
        with anyio.CancelScope() as scope:
            self._scopes.add(scope)
            try:
                await waiting
            finally:
                self._scopes.discard(scope)
        return not scope.cancelled_caught

    def renew(self) -> int:
        """End every wait running in :meth:`wait` (they start again); how many there were."""
        scopes = list(self._scopes)
        for scope in scopes:
            scope.cancel()
        return len(scopes)


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

    __slots__ = ("_peak", "_per_ip", "max_connections", "max_per_ip", "open")

    def __init__(self, max_connections: int, max_per_ip: int = 0) -> None:
        self.max_connections = max_connections
        self.max_per_ip = max_per_ip
        self.open = 0
        self._per_ip: dict[str, int] = {}
        self._peak = 0  # most open at once since memory was last released

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
        if self.open > self._peak:
            self._peak = self.open
        return None

    def release(self, host: str) -> bool:
        """A connection :meth:`admit` counted has ended. True when at most an eighth remain
        of a peak of some size: time to :func:`release_free_memory` (soon, once the burst of
        closes is over)."""
        self.open -= 1
        if self.max_per_ip:
            count = self._per_ip.get(host, 0) - 1
            if count > 0:
                self._per_ip[host] = count
            else:
                self._per_ip.pop(host, None)
        if self._peak >= _TRIM_PEAK and self.open * 8 <= self._peak:
            self._peak = self.open
            return True
        return False


async def accept_forever(
    accept: Callable[[], Awaitable[_T]], on_accept: Callable[[_T], Awaitable[None]]
) -> None:
    """Accept with ``accept()`` (a listener's ``accept``) until cancelled and await
    ``on_accept(connection)`` for each (it must return quickly: start a task for it).

    When the process (or system) is out of descriptors, accepting waits a little and tries
    again, up to a second between tries, while the connections already open are served; a
    warning is logged when it starts and a note when accepting works again. A burst lasts
    until accepting has worked for :data:`_BURST_QUIET` seconds: while descriptors are scarce,
    accepts that succeed now and then (one freed descriptor each) do not start new bursts.
    """
    failures = 0
    backoff = _FIRST_BACKOFF
    recovered_at: float | None = None  # when accepting last worked again after failures
    while True:
        try:
            connection = await accept()
        except (OSError, anyio.BrokenResourceError) as exc:
            # anyio's trio backend raises BrokenResourceError from the OSError
            error = exc if isinstance(exc, OSError) else exc.__cause__
            code = getattr(error, "errno", None)
            if code in _TRANSIENT:
                continue
            if code not in _EXHAUSTED:
                raise
            in_burst = recovered_at is not None and (
                anyio.current_time() - recovered_at < _BURST_QUIET
            )
            if not failures and not in_burst:
                logger.warning(
                    "cannot accept connections (%s); retrying, open connections are served",
                    error,
                )
            failures += 1
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
            continue
        if failures:
            if recovered_at is None or anyio.current_time() - recovered_at >= _BURST_QUIET:
                logger.warning("accepting connections again after %d failed attempts", failures)
            else:
                logger.debug("accepted again after %d more failed attempts", failures)
            recovered_at = anyio.current_time()
            failures = 0
            backoff = _FIRST_BACKOFF
        try:
            await on_accept(connection)
        except Exception:  # one connection's trouble must not stop the listener
            logger.exception("error taking a new connection")
        # not kept while waiting for the next one: after a crowd, the last socket it accepted
        # would pin the memory around it (one live object keeps a whole 1 MiB arena)
        del connection
