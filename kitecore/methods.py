"""Registered methods and their handler chains (Go's ``Method`` and middleware order).

Order of a call: the method's pre handlers, the kite-wide pre handlers, the main handler,
the method's post handlers, the kite-wide post handlers. Any error stops the chain. Then
every final function runs (the method's first), each may rewrite ``(result, error)``.

Handlers may be ``async def`` (run on the event loop) or plain ``def``: a plain function
runs in a worker thread (``anyio.to_thread``) so that a blocking handler cannot stall the
kite. A sync handler that needs the event loop uses ``anyio.from_thread.run``.
"""

from __future__ import annotations

import enum
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from kitecore.protocol.errors import RequestLimitError
from kitecore.throttle import TokenBucket

if TYPE_CHECKING:
    from kitecore.request import Request

logger = logging.getLogger(__name__)

#: ``async def handler(r) -> result`` or ``def handler(r) -> result``.
Handler = Callable[["Request"], Any | Awaitable[Any]]
#: ``final(r, result, error) -> (result, error)``, sync or async.
FinalFunc = Callable[["Request", Any, BaseException | None], Any]


class MethodHandling(enum.Enum):
    """Which result of the chain is sent back (Go's ``MethodHandling``)."""

    RETURN_METHOD = "method"
    RETURN_FIRST = "first"
    RETURN_LATEST = "latest"


class HandlerFunc:
    """A handler with its calling convention worked out once, at registration."""

    __slots__ = ("function", "is_async")

    def __init__(self, function: Callable[..., Any]) -> None:
        if not callable(function):
            raise TypeError(f"handler must be callable, not {function!r}")
        self.function = function
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
            type(function).__call__
        )

    async def __call__(self, *args: Any) -> Any:
        if self.is_async:
            return await self.function(*args)
        result = await anyio.to_thread.run_sync(self.function, *args, abandon_on_cancel=True)
        if inspect.isawaitable(result):
            return await result
        return result


class Method:
    """A named method: its handler, auth rule, throttle and middleware."""

    def __init__(self, name: str, handler: Handler, *, auth: bool | None = None) -> None:
        if not name:
            raise ValueError("method name must not be empty")
        self.name = name
        self.handler = HandlerFunc(handler)
        #: None: follow the kite's ``config.disable_authentication`` at call time.
        self.auth = auth
        self.bucket: TokenBucket | None = None
        self.pre_handlers: list[HandlerFunc] = []
        self.post_handlers: list[HandlerFunc] = []
        self.final_funcs: list[HandlerFunc] = []

    def __repr__(self) -> str:
        return f"<Method {self.name}>"

    # chainable configuration, as in Go
    def disable_authentication(self) -> Method:
        """Serve this method without authentication."""
        self.auth = False
        return self

    def throttle(self, fill_interval: float, capacity: int) -> Method:
        """Allow bursts of ``capacity`` calls, refilled one per ``fill_interval`` seconds."""
        self.bucket = TokenBucket(fill_interval, capacity)
        return self

    def pre_handle(self, handler: Handler) -> Method:
        self.pre_handlers.append(HandlerFunc(handler))
        return self

    def post_handle(self, handler: Handler) -> Method:
        self.post_handlers.append(HandlerFunc(handler))
        return self

    def final_func(self, function: FinalFunc) -> Method:
        self.final_funcs.append(HandlerFunc(function))
        return self

    def check_throttle(self) -> None:
        """Raise ``requestLimitError`` if the throttle bucket is empty."""
        if self.bucket is not None and not self.bucket.take():
            raise RequestLimitError("The maximum request rate is exceeded.")

    @property
    def is_simple(self) -> bool:
        """True when only the main handler runs (no middleware at all)."""
        return not (self.pre_handlers or self.post_handlers or self.final_funcs)


class Middleware:
    """Kite-wide pre/post/final handlers."""

    def __init__(self) -> None:
        self.pre_handlers: list[HandlerFunc] = []
        self.post_handlers: list[HandlerFunc] = []
        self.final_funcs: list[HandlerFunc] = []

    @property
    def empty(self) -> bool:
        return not (self.pre_handlers or self.post_handlers or self.final_funcs)


async def run_chain(
    method: Method, kite_wide: Middleware, request: Request, handling: MethodHandling
) -> Any:
    """Run ``method``'s handler chain for ``request`` and return the selected result."""
    if method.is_simple and kite_wide.empty:
        return await method.handler(request)
    result: Any = None
    error: BaseException | None = None
    first: Any = None
    try:
        for handler in (*method.pre_handlers, *kite_wide.pre_handlers):
            value = await handler(request)
            if first is None:
                first = value
            result = value if handling is MethodHandling.RETURN_LATEST else result
        main = await method.handler(request)
        if first is None:
            first = main
        result = main if handling is not MethodHandling.RETURN_FIRST else first
        for handler in (*method.post_handlers, *kite_wide.post_handlers):
            value = await handler(request)
            if first is None:
                first = value
            if handling is MethodHandling.RETURN_LATEST:
                result = value
        if handling is MethodHandling.RETURN_FIRST:
            result = first
        elif handling is MethodHandling.RETURN_METHOD:
            result = main
    except Exception as exc:  # the chain stops; final funcs still see the error
        result, error = None, exc
    for final in (*method.final_funcs, *kite_wide.final_funcs):
        outcome = await final(request, result, error)
        if not (isinstance(outcome, tuple) and len(outcome) == 2):
            raise TypeError(
                f"final function {final.function!r} must return (result, error), not {outcome!r}"
            )
        result, error = outcome
    if error is not None:
        raise error
    return result
