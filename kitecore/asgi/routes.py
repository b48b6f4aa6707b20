"""The route table a kite's transports mount on when the kite is served by an ASGI app.

:class:`ASGIRoutes` offers what transports and plugins use of the kite's own
:class:`~kitecore.http.server.HTTPServer` while mounting: ``add_route``,
``add_websocket_route`` and ``start_soon`` (tasks that outlive one request, such as SockJS's
HTTP sessions, run in the task group the ASGI lifespan opened).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import anyio.abc

from kitecore.http.server import HTTPHandler, WebSocketHandler

__all__ = ["ASGIRoutes", "Route"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """One mounted route: an exact path or a regex matching the whole path."""

    pattern: str | re.Pattern[str]
    handler: Callable[..., Awaitable[None]]
    methods: frozenset[str] | None = None

    def match(self, path: str) -> tuple[bool, re.Match[str] | None]:
        """Whether ``path`` is this route's, and the regex match (None for an exact path)."""
        if isinstance(self.pattern, str):
            return path == self.pattern, None
        found = self.pattern.fullmatch(path)
        return found is not None, found


class ASGIRoutes:
    """HTTP and WebSocket routes, looked up by path, plus a task group for long-lived work."""

    #: Never a listening server (the loopback transport looks for one by port).
    serving = False
    port = 0

    def __init__(self) -> None:
        self.http: list[Route] = []
        self.websocket: list[Route] = []
        self.task_group: anyio.abc.TaskGroup | None = None

    def add_route(
        self,
        path: str | re.Pattern[str],
        handler: HTTPHandler,
        *,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Serve plain HTTP requests for ``path`` with ``handler`` (``methods``: others 405)."""
        allowed = frozenset(m.upper() for m in methods) if methods is not None else None
        self.http.append(Route(path, handler, allowed))

    def add_websocket_route(self, path: str | re.Pattern[str], handler: WebSocketHandler) -> None:
        """Serve WebSocket connections for ``path`` with ``handler``."""
        self.websocket.append(Route(path, handler, frozenset({"GET"})))

    def start_soon(self, func: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``func(*args)`` in the lifespan's task group; an exception is logged.

        Raises :class:`ConnectionRefusedError` when no lifespan runs (the ASGI server was
        started without lifespan, or the framework does not pass it on to a mounted app).
        """
        if self.task_group is None:
            raise ConnectionRefusedError(
                "the kite's ASGI app is not started: run the ASGI server with lifespan on, or "
                "give the framework the app's lifespan (Starlette(lifespan=kite_app.lifespan))"
            )
        self.task_group.start_soon(_run_logged, func, args)

    @staticmethod
    def find(
        routes: list[Route], paths: Iterable[str]
    ) -> list[tuple[str, Route, re.Match[str] | None]]:
        """The routes matching the first of ``paths`` that any route matches, with that path."""
        for path in paths:
            found: list[tuple[str, Route, re.Match[str] | None]] = []
            for route in routes:
                matched, match = route.match(path)
                if matched:
                    found.append((path, route, match))
            if found:
                return found
        return []


async def _run_logged(func: Callable[..., Awaitable[object]], args: tuple[object, ...]) -> None:
    try:
        await func(*args)
    except Exception:
        logger.exception("background task %r failed", func)
