"""A kite as an ASGI 3 application (:meth:`kitecore.Kite.asgi_app`).

The app serves what the kite's own server serves: the transports' routes under ``prefix``
(raw WebSocket on ``/kite`` and ``/kite/websocket``; the SockJS routes when that plugin is
installed), ``<prefix>/health``, and the routes added with ``Kite.handle_http`` /
``Kite.handle_websocket`` (Kontrol's, the metrics plugin's). Lifespan ``startup`` starts the
kite (and registers it with Kontrol when a public URL and a Kontrol are configured);
``shutdown`` runs :meth:`Kite.shutdown`.

Paths: a route matches the path the client asked for (ASGI ``path``; with a ``root_path``
that the server stripped from ``path``, the two joined), so ``app.mount("/kite", ...)`` in
Starlette and the app served whole both answer on ``/kite``. When nothing matches that way,
the path relative to ``root_path`` is tried, for servers run behind a proxy that strips a
prefix (``uvicorn --root-path /api``).

Nothing here imports an ASGI server or framework.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, cast

import anyio

from kitecore.asgi.http import ASGIResponse, make_request
from kitecore.asgi.routes import ASGIRoutes
from kitecore.asgi.types import Receive, Scope, Send
from kitecore.asgi.websocket import ASGIWebSocket

if TYPE_CHECKING:
    from kitecore.http.server import HTTPResponse, HTTPServer
    from kitecore.kite import Kite

__all__ = ["KiteASGIApp"]

logger = logging.getLogger(__name__)

#: Largest request body read (larger gets 413), as on the kite's own server.
MAX_BODY_SIZE = 16 * 1024 * 1024
_GONE = (
    anyio.EndOfStream,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.BusyResourceError,
    OSError,
)


class _BodyTooLarge(Exception):
    pass


class _ClientGone(Exception):
    pass


class KiteASGIApp:
    """The ASGI 3 application serving one :class:`~kitecore.Kite`.

    ``url`` is the public URL clients reach the kite at (``https://api.example.com/kite``):
    the kite advertises it, and registers it with Kontrol on lifespan startup when Kontrol is
    configured (``register=None``) or when ``register`` is True. ``prefix`` is where the
    transports and the health route are mounted (``/kite``, as on the kite's own server).

    When a framework does not pass lifespan events on to a mounted app (Starlette and FastAPI
    don't), give it :meth:`lifespan`: ``Starlette(..., lifespan=kite_app.lifespan)``.
    """

    def __init__(
        self,
        kite: Kite,
        *,
        url: str | None = None,
        prefix: str = "/kite",
        register: bool | None = None,
    ) -> None:
        self.kite = kite
        self.url = url
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.register = register
        self._routes: ASGIRoutes | None = None
        self._running = False

    def __repr__(self) -> str:
        return f"<KiteASGIApp {self.kite.identity.path} at {self.prefix or '/'}>"

    # --- routes ------------------------------------------------------------------------------

    @property
    def routes(self) -> ASGIRoutes:
        """The routes served (collected from the kite on first use)."""
        if self._routes is None:
            self._routes = self._collect_routes()
        return self._routes

    def _collect_routes(self) -> ASGIRoutes:
        kite = self.kite
        routes = ASGIRoutes()
        # Routes mount on "a server": transports use add_route, add_websocket_route and
        # start_soon of it, which ASGIRoutes offers with the same signatures.
        kite._mount_routes(cast("HTTPServer", routes), self.prefix)
        return routes

    # --- ASGI --------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._serve_http(scope, receive, send)
        elif kind == "websocket":
            await self._serve_websocket(scope, receive, send)
        elif kind == "lifespan":
            await self._serve_lifespan(receive, send)
        else:
            raise ValueError(f"the kite's ASGI app does not serve {kind!r} scopes")

    async def _serve_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        routes = self.routes
        method: str = scope["method"]
        paths = _route_paths(scope)
        found = routes.find(routes.http, paths)
        if not found:
            if routes.find(routes.websocket, paths):
                await _answer(
                    send,
                    426,
                    f"{scope['path']} is a WebSocket endpoint: connect with a WebSocket client",
                    [("upgrade", "websocket"), ("sec-websocket-version", "13")],
                )
            else:
                await _answer(send, 404, f"no route for {scope['path']}")
            return
        for candidate in found:
            if candidate[1].methods is None or method in candidate[1].methods:
                path, route, match = candidate
                break
        else:
            allowed = sorted({m for _, route, _ in found for m in route.methods or ()})
            await _answer(send, 405, f"{method} not allowed", [("allow", ", ".join(allowed))])
            return
        try:
            request = make_request(scope, path, method)
        except UnicodeDecodeError:
            await _answer(send, 400, "request target is not valid UTF-8")
            return
        request.match = match
        try:
            request.body = await _read_body(receive)
        except _BodyTooLarge:
            await _answer(send, 413, f"request body over {MAX_BODY_SIZE} bytes")
            return
        except _ClientGone:
            return
        response = ASGIResponse(send, method)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_watch_disconnect, receive, response)
            try:
                await route.handler(request, cast("HTTPResponse", response))
            except Exception as exc:
                if response.disconnected.is_set():
                    logger.debug("client %s went away: %r", request.remote_address, exc)
                    return
                logger.exception("HTTP handler for %s %s failed", method, path)
                if not response.started:
                    await _answer(send, 500, "internal server error")
                return
            finally:
                tg.cancel_scope.cancel()
        if response.disconnected.is_set() and not response.finished:
            return
        if not response.started:
            logger.error("HTTP handler for %s %s sent no response", method, path)
            await _answer(send, 500, "handler sent no response")
        elif not response.finished:
            try:
                await response.end()
            except anyio.BrokenResourceError:
                pass

    async def _serve_websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":  # the client left before the handshake
            return
        routes = self.routes
        found = routes.find(routes.websocket, _route_paths(scope))
        if not found:
            await _deny(scope, send, 404, f"no WebSocket route for {scope['path']}")
            return
        if self.kite.shutting_down:
            await _deny(scope, send, 503, "kite is shutting down")
            return
        path, route, match = found[0]
        try:
            request = make_request(scope, path, "GET")
        except UnicodeDecodeError:
            await _deny(scope, send, 400, "request target is not valid UTF-8")
            return
        request.match = match
        config = self.kite.config
        await send({"type": "websocket.accept"})
        ws = ASGIWebSocket(
            receive,
            send,
            max_message_size=config.max_message_size,
            max_outbound_bytes=config.max_outbound_bytes or None,
            remote_address=request.remote_address,
        )
        try:
            await route.handler(ws, request)
        except _GONE as exc:
            logger.debug("websocket %s from %s ended: %r", path, request.remote_address, exc)
        except Exception:
            logger.exception("websocket handler for %s failed", path)
            await ws.aclose(1011, "internal error")
        finally:
            await ws.aclose(1000)

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        started = False
        try:
            async with self.lifespan():
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()  # lifespan.shutdown
        except Exception as exc:
            phase = "shutdown" if started else "startup"
            logger.exception("kite %s failed", phase)
            await send({"type": f"lifespan.{phase}.failed", "message": repr(exc)})
            return
        await send({"type": "lifespan.shutdown.complete"})

    # --- lifespan ----------------------------------------------------------------------------

    def lifespan(self, app: object = None) -> AbstractAsyncContextManager[None]:
        """Start the kite for the block (the ASGI lifespan, as a context manager).

        Accepts (and ignores) the framework's app, so ``Starlette(lifespan=kite_app.lifespan)``
        and FastAPI's ``lifespan=`` take it as it is. On entry the kite starts (and registers
        with Kontrol, see the class); on exit it shuts down gracefully (:meth:`Kite.shutdown`).
        """
        return self._lifespan()

    @asynccontextmanager
    async def _lifespan(self) -> AsyncIterator[None]:
        if self._running:
            raise RuntimeError(f"{self!r} is already started")
        kite = self.kite
        routes = self.routes
        self._running = True
        try:
            group = await kite._tasks.open()
            try:
                kite._begin_lifecycle()
                routes.task_group = group
                if self.url:
                    kite.url = self.url
                try:
                    kite._announce_started(group)
                    logger.info("%s serving in an ASGI app at %s", kite.identity.path, kite.url)
                    if self._should_register():
                        await self._register()
                    yield
                finally:
                    await kite.shutdown()
                    routes.task_group = None
            finally:
                await kite._tasks.aclose()
            kite.plugins.notify("kite_stopped", kite=kite)
        finally:
            self._running = False

    def _should_register(self) -> bool:
        if self.register is False:
            return False
        if not self.url:
            if self.register:
                raise ValueError("register=True needs the kite's public url= to register")
            return False
        return bool(self.register or self.kite.kontrol_client.url)

    async def _register(self) -> None:
        """Keep the kite registered; wait (up to ``config.timeout``) for the first success."""
        kite = self.kite
        await kite.register_forever(self.url)
        with anyio.move_on_after(kite.config.timeout) as waited:
            await kite.kontrol_client.registered.wait()
        if waited.cancelled_caught:
            logger.warning(
                "%s: not registered with Kontrol within %gs; retrying in the background",
                kite.identity.path,
                kite.config.timeout,
            )


def _route_paths(scope: Scope) -> list[str]:
    """The paths to look routes up with: the one the client asked for, then the one
    relative to ``root_path``, then without a trailing slash."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    full = path if not root or path.startswith(root) else root + path
    paths = [full]
    if root and full.startswith(root):
        relative = full[len(root) :]
        if not relative or relative.startswith("/"):
            paths.append(relative or "/")
    for candidate in list(paths):
        if len(candidate) > 1 and candidate.endswith("/"):
            paths.append(candidate.rstrip("/") or "/")
    return paths


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_SIZE:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _watch_disconnect(receive: Receive, response: ASGIResponse) -> None:
    """Wait for ``http.disconnect`` while a handler runs: a long-poll handler learns from
    ``response.disconnected`` that nobody waits for its answer any more."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            response.disconnected.set()
            return


async def _answer(
    send: Send, status: int, message: str, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """A small text answer (errors); never raises."""
    body = message.encode() + b"\n"
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    raw += [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    try:
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
    except Exception:  # the client is gone
        logger.debug("answer %d not sent", status, exc_info=True)


async def _deny(scope: Scope, send: Send, status: int, message: str) -> None:
    """Refuse a WebSocket handshake: with an HTTP answer when the server can send one (the
    ``websocket.http.response`` extension), else by closing (the server answers 403)."""
    logger.debug("websocket %s refused: %d %s", scope["path"], status, message)
    if "websocket.http.response" in scope.get("extensions", {}):
        body = message.encode() + b"\n"
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", b"%d" % len(body)),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008, "reason": message[:120]})
