"""One-shot waiters: the cheapest way to hand a value from one task to another.

Every RPC creates one waiter (the caller waits for its reply) and the dispatcher wakes idle
workers with them, so they are on the hot path. ``anyio.Event`` plus a cancel scope for the
timeout costs several microseconds on asyncio (backend lookup through sniffio on every
construction, cancel-scope bookkeeping); an asyncio future with a ``call_later`` timer costs
a fraction of that. So on asyncio the waiter is a loop future, and on every other backend
(trio) it is an ``anyio.Event``, which is cheap there. Both honour anyio cancellation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import anyio
import sniffio


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


class _FutureWaiter:
    __slots__ = ("_future", "_loop")

    def __init__(self, loop: Any) -> None:
        self._loop = loop
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


def waiter_factory() -> Callable[[], Waiter]:
    """A maker of waiters for the running event loop (call it inside the loop)."""
    if sniffio.current_async_library() == "asyncio":
        import asyncio

        loop = asyncio.get_running_loop()
        return lambda: _FutureWaiter(loop)
    return _EventWaiter
