"""One-shot waiters: the cheapest way to hand a value from one task to another.

Every RPC creates one waiter (the caller waits for its reply) and the dispatcher wakes idle
workers with them, so they are on the hot path. ``anyio.Event`` plus a cancel scope for the
timeout costs several microseconds on asyncio (backend lookup through sniffio on every
construction, cancel-scope bookkeeping); an asyncio future with a ``call_later`` timer costs
a fraction of that. So on asyncio the waiter is a loop future, and on every other backend
(trio) it is an ``anyio.Event``, which is cheap there. Both honour anyio cancellation.

Timeouts of a second or more (every call's reply timeout, 15 s by default) share one loop
timer per factory (:class:`_Deadlines`): deadlines are rounded up to the next ``_TICK``
(50 ms), so a timeout fires up to one tick late, never early, and a call costs a set insert
and removal instead of a ``TimerHandle`` pushed onto the loop's heap and cancelled. Shorter
timeouts keep their own exact timer.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import sniffio

if TYPE_CHECKING:
    import asyncio  # imported at run time only when asyncio runs: see waiter_factory


class WaitTimeout(Exception):
    """:meth:`Waiter.wait` ran out of time."""


class Waiter(Protocol):
    """A value or an error, delivered once by :meth:`set_result` or :meth:`set_exception`."""

    def set_result(self, value: Any) -> None: ...

    def set_exception(self, error: BaseException) -> None: ...

    def done(self) -> bool: ...

    async def wait(self, timeout: float | None = None) -> Any:
        """The value (or raise the error); :class:`WaitTimeout` after ``timeout`` seconds."""
        ...


#: Granularity of the shared timer, in seconds: timeouts fire up to this much late.
_TICK = 0.05
#: Timeouts from this long on go through the shared timer (shorter ones stay exact).
_COARSE_MIN = 1.0


class _Deadlines:
    """The timeouts of many futures on one loop timer, grouped by tick.

    A future waiting until ``deadline`` goes into the bucket of tick
    ``int(deadline / _TICK) + 1``, whose time is after the deadline; one ``call_at`` waits for
    the earliest bucket, and when it fires, the due buckets' futures that are still pending
    fail with :class:`WaitTimeout`.
    """

    __slots__ = ("_buckets", "_loop", "_ticks", "_timer", "_timer_tick")

    def __init__(self, loop: Any) -> None:
        self._loop = loop
        self._buckets: dict[int, set[Any]] = {}
        self._ticks: list[int] = []  # heap of the buckets' ticks
        self._timer: Any = None
        self._timer_tick = 0

    def add(self, future: Any, timeout: float) -> int:
        """Fail ``future`` with WaitTimeout once ``timeout`` seconds passed; returns the tick
        to pass to :meth:`discard`."""
        tick = int((self._loop.time() + timeout) / _TICK) + 1
        bucket = self._buckets.get(tick)
        if bucket is None:
            bucket = self._buckets[tick] = set()
            heapq.heappush(self._ticks, tick)
            if self._timer is None or tick < self._timer_tick:
                self._schedule(tick)
        bucket.add(future)
        return tick

    def discard(self, future: Any, tick: int) -> None:
        """Forget ``future`` (it is done, or its waiter left)."""
        bucket = self._buckets.get(tick)
        if bucket is not None:
            bucket.discard(future)

    def _schedule(self, tick: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer_tick = tick
        self._timer = self._loop.call_at(tick * _TICK, self._fire)

    def _fire(self) -> None:
        self._timer = None
        # the loop runs a timer up to its clock resolution early: the scheduled tick is due
        due = max(self._timer_tick, int(self._loop.time() / _TICK))
        ticks, buckets = self._ticks, self._buckets
        while ticks and ticks[0] <= due:
            for future in buckets.pop(heapq.heappop(ticks)):
                if not future.done():
                    future.set_exception(WaitTimeout())
        if ticks:
            self._schedule(ticks[0])


class _FutureWaiter:
    __slots__ = ("_deadlines", "_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadlines: _Deadlines) -> None:
        self._loop = loop
        self._deadlines = deadlines
        self._future = loop.create_future()

    def set_result(self, value: Any) -> None:
        if not self._future.done():
            self._future.set_result(value)

    def set_exception(self, error: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(error)

    def done(self) -> bool:
        return self._future.done()

    async def wait(self, timeout: float | None = None) -> Any:
        future = self._future
        if timeout is None or math.isinf(timeout):
            return await future
        if timeout >= _COARSE_MIN:
            deadlines = self._deadlines
            tick = deadlines.add(future, timeout)
            try:
                return await future
            finally:
                deadlines.discard(future, tick)
        timer = self._loop.call_later(timeout, _expire, future)
        try:
            return await future
        finally:
            timer.cancel()


def _expire(future: Any) -> None:
    if not future.done():
        future.set_exception(WaitTimeout())


class _EventWaiter:
    __slots__ = ("_error", "_event", "_value")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def set_result(self, value: Any) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def set_exception(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    def done(self) -> bool:
        return self._event.is_set()

    async def wait(self, timeout: float | None = None) -> Any:
        if timeout is None or math.isinf(timeout):
            await self._event.wait()
        else:
            with anyio.move_on_after(timeout):
                await self._event.wait()
            if not self._event.is_set():
                raise WaitTimeout
        if self._error is not None:
            raise self._error
        return self._value


#: The asyncio maker last made, and its loop: every connection on a loop shares one maker
#: (and one timer for the coarse timeouts), instead of a maker and a timer table of its own,
#: some 400 bytes per connection. The last loop is kept until another one asks.
_last_factory: tuple[Any, Callable[[], Waiter]] | None = None


def waiter_factory() -> Callable[[], Waiter]:
    """A maker of waiters for the running event loop (call it inside the loop)."""
    global _last_factory
    if sniffio.current_async_library() == "asyncio":
        import asyncio

        loop = asyncio.get_running_loop()
        last = _last_factory
        if last is not None and last[0] is loop:
            return last[1]
        deadlines = _Deadlines(loop)

        def new_waiter() -> Waiter:
            return _FutureWaiter(loop, deadlines)

        _last_factory = (loop, new_waiter)
        return new_waiter
    return _EventWaiter
