"""The SockJS server: one :class:`SockJSService` per prefix on kitecore's HTTP server.

It answers every SockJS URL below the prefix (one regex HTTP route plus websocket upgrade
routes), keeps the session table, runs the kite's accept handler once per session (as a task of
the HTTP server, so a session outlives the request that opened it) and reaps sessions whose
client went away. The protocol decisions are the sans-IO modules'; this module only moves bytes
and keeps time (``time.monotonic``).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping

import anyio
from anyio.abc import ObjectStream

from kitecore.http.server import HTTPRequest, HTTPResponse, HTTPServer
from kitecore.http.websocket import WebSocketConnection
from kitecore.transport import PeerInfo

from . import responses
from .channels import SessionChannel, WebSocketChannel
from .config import SockJSConfig
from .errors import RequestError
from .framing import Framing, Transport
from .payload import decode_jsonp_send, decode_xhr_send, jsonp_callback
from .routes import Route, RouteKind, allowed_methods, match_route
from .session import Output, Receiver, Session, SessionTable

__all__ = ["AcceptHandler", "SockJSService"]

logger = logging.getLogger(__name__)

#: ``async def on_accept(stream, peer)``: serves one session until it ends.
AcceptHandler = Callable[[ObjectStream[str], PeerInfo], Awaitable[None]]

_SEND_TRANSPORTS = (Transport.XHR_SEND, Transport.JSONP_SEND)
_CALLBACK_TRANSPORTS = (Transport.JSONP, Transport.HTMLFILE)
#: Longest the reaper sleeps, so sessions expire at most this late.
_REAP_INTERVAL = 1.0


class _Live:
    """A session with its kite-side channel and the wake-up of its attached receiver."""

    __slots__ = ("channel", "dirty", "session", "waiter")

    def __init__(self, session: Session) -> None:
        self.session = session
        self.waiter: anyio.Event | None = None
        #: something happened since the receiver last flushed (no wake-up is lost)
        self.dirty = False
        self.channel = SessionChannel(session, self.wake)

    def wake(self) -> None:
        self.dirty = True
        if self.waiter is not None:
            self.waiter.set()


class SockJSService:
    """SockJS endpoints under one prefix, handing each session to ``on_accept``.

    ``on_accept(stream, peer)`` gets an ``ObjectStream[str]`` per session; when it returns the
    session is closed with ``c[3000,"Go away!"]``. Raw websocket connections (when
    ``config.raw_websocket``) are handed over as plain
    :class:`~kitecore.http.websocket.WebSocketConnection` streams.
    """

    def __init__(self, config: SockJSConfig, on_accept: AcceptHandler) -> None:
        self.config = config
        self.on_accept = on_accept
        self.prefix = ""
        self._table = SessionTable(config)
        self._live: dict[str, _Live] = {}
        self._server: HTTPServer | None = None
        self._reaping = False

    @property
    def session_count(self) -> int:
        """HTTP sessions currently kept (websocket sessions are not kept)."""
        return len(self._table)

    def mount(self, server: HTTPServer, prefix: str) -> None:
        """Add the routes for ``prefix`` (``/kite``) to ``server``."""
        base = prefix.rstrip("/")
        self.prefix = base
        self._server = server
        escaped = re.escape(base)
        server.add_route(re.compile(escaped + r"(/.*)?"), self.handle_http)
        if self.config.websocket:
            server.add_websocket_route(
                re.compile(escaped + r"/[^/.]+/[^/.]+/websocket"), self.handle_websocket
            )
        if self.config.raw_websocket:
            server.add_websocket_route(base + "/websocket", self.handle_raw_websocket)

    # -- plain HTTP -----------------------------------------------------------------------------

    async def handle_http(self, request: HTTPRequest, response: HTTPResponse) -> None:
        """Answer one HTTP request below the prefix."""
        config = self.config
        headers = {name: value for name, value in reversed(request.headers.items())}
        route = match_route(request.path[len(self.prefix) :], config)
        if route is None:
            return await _send(response, responses.not_found())
        methods = allowed_methods(route)
        if request.method == "OPTIONS" and "OPTIONS" in methods:
            return await _send(response, responses.preflight(route, config, headers, time.time()))
        if request.method not in methods:
            return await _send(response, responses.method_not_allowed(methods))
        if route.kind is RouteKind.GREETING:
            return await _send(response, responses.greeting())
        if route.kind is RouteKind.INFO:
            return await _send(response, responses.info(config, headers))
        if route.kind is RouteKind.IFRAME:
            return await _send(response, responses.iframe(config, headers, time.time()))
        if route.kind is RouteKind.RAW_WEBSOCKET or route.transport is Transport.WEBSOCKET:
            # an upgrade would have gone to the websocket route
            return await _send(response, responses.websocket_bad_request())
        assert route.transport is not None
        if route.transport in _SEND_TRANSPORTS:
            return await self._handle_send(request, response, route, headers)
        await self._handle_receive(request, response, route, headers)

    async def _handle_send(
        self,
        request: HTTPRequest,
        response: HTTPResponse,
        route: Route,
        headers: Mapping[str, str],
    ) -> None:
        assert route.transport is not None
        live = self._live_session(route.session_id)
        if live is None:
            return await _send(response, responses.not_found())
        extra = responses.transport_headers(route.transport, self.config, headers)
        try:
            if route.transport is Transport.JSONP_SEND:
                messages = decode_jsonp_send(request.body, headers.get("content-type", ""))
            else:
                messages = decode_xhr_send(request.body)
        except RequestError as exc:
            return await _send(response, responses.error(exc, extra))
        if live.session.is_open:
            live.channel.deliver(messages)
        await _send(response, responses.send_accepted(route.transport, self.config, headers))

    async def _handle_receive(
        self,
        request: HTTPRequest,
        response: HTTPResponse,
        route: Route,
        headers: Mapping[str, str],
    ) -> None:
        assert route.transport is not None
        transport = route.transport
        callback = ""
        if transport in _CALLBACK_TRANSPORTS:
            try:
                callback = jsonp_callback(request.target.partition("?")[2])
            except RequestError as exc:
                return await _send(response, responses.error(exc))
        framing = Framing(transport, callback)
        receiver = Receiver(framing, self.config.response_limit)
        now = time.monotonic()
        session, created = self._table.get_or_create(route.session_id, now)
        output = session.attach(receiver, now)
        live = self._live.get(route.session_id)
        if created or live is None or live.session is not session:
            live = _Live(session)
            self._live[route.session_id] = live
            peer = PeerInfo("sockjs", request.remote_address, request.headers.items())
            self._start(self._run_session, live, peer)
        head = responses.receiving_head(framing, self.config, headers)
        if not framing.streaming:
            chunks = list(output.chunks)
            while not output.end:
                next_output = await self._wait(live, receiver, response)
                if next_output is None:
                    return
                output = next_output
                chunks += output.chunks
            body = "".join(chunks).encode("utf-8")
            await response.send(head.status, head.headers, body)
            return
        await response.start(head.status, head.headers)
        while True:
            try:
                for chunk in output.chunks:
                    await response.write(chunk.encode("utf-8"))
            except anyio.BrokenResourceError:
                self._interrupted(live, receiver)
                return
            if output.end:
                await response.end()
                return
            next_output = await self._wait(live, receiver, response)
            if next_output is None:
                return
            output = next_output

    async def _wait(self, live: _Live, receiver: Receiver, response: HTTPResponse) -> Output | None:
        """Wait until the session has news for ``receiver`` or a heartbeat is due, then flush.
        Returns None if the client went away meanwhile (the session is then closed)."""
        session = live.session
        deadline = session.deadline
        delay = self.config.heartbeat_delay if deadline is None else deadline - time.monotonic()
        if delay > 0 and not live.dirty:
            waiter = live.waiter = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(_set_when, response.disconnected, waiter)
                with anyio.move_on_after(delay):
                    await waiter.wait()
                tg.cancel_scope.cancel()
            if live.waiter is waiter:
                live.waiter = None
        if response.disconnected.is_set():
            self._interrupted(live, receiver)
            return None
        live.dirty = False
        return session.flush(receiver, time.monotonic())

    def _interrupted(self, live: _Live, receiver: Receiver) -> None:
        live.session.detach(receiver, time.monotonic(), interrupted=True)
        logger.debug("SockJS session %s: client went away", live.session.session_id)
        self._forget(live)

    # -- sessions -------------------------------------------------------------------------------

    def _live_session(self, session_id: str) -> _Live | None:
        session = self._table.get(session_id)
        live = self._live.get(session_id)
        if session is None or live is None or live.session is not session:
            return None
        return live

    def _start(self, func: Callable[..., Awaitable[object]], *args: object) -> None:
        assert self._server is not None
        self._server.start_soon(func, *args)
        if not self._reaping:
            self._reaping = True
            self._server.start_soon(self._reap_loop)

    async def _run_session(self, live: _Live, peer: PeerInfo) -> None:
        logger.debug("SockJS session %s opened", live.session.session_id)
        try:
            await self.on_accept(live.channel, peer)
        finally:
            with anyio.CancelScope(shield=True):
                await live.channel.aclose()

    def _forget(self, live: _Live) -> None:
        """The session is over for good: end the kite's stream and drop it."""
        self._table.remove(live.session)
        session_id = live.session.session_id
        if session_id is not None and self._live.get(session_id) is live:
            del self._live[session_id]
        live.channel.end()

    async def _reap_loop(self) -> None:
        try:
            while self._live:
                next_expiry = self._table.next_expiry()
                delay = _REAP_INTERVAL
                if next_expiry is not None:
                    delay = min(delay, max(0.0, next_expiry - time.monotonic()) + 0.001)
                await anyio.sleep(delay)
                for session in self._table.reap(time.monotonic()):
                    live = self._live.get(session.session_id or "")
                    if live is not None and live.session is session:
                        logger.debug("SockJS session %s timed out", session.session_id)
                        self._forget(live)
        finally:
            self._reaping = False

    # -- websocket ------------------------------------------------------------------------------

    async def handle_websocket(self, ws: WebSocketConnection, request: HTTPRequest) -> None:
        """One SockJS session over a websocket: ``o``, then messages, ``h`` when idle."""
        channel = WebSocketChannel(ws)
        peer = PeerInfo("sockjs", request.remote_address, request.headers.items())
        await channel.open()
        async with anyio.create_task_group() as tg:
            tg.start_soon(channel.heartbeat, self.config.heartbeat_delay)
            try:
                await self.on_accept(channel, peer)
            finally:
                tg.cancel_scope.cancel()
                with anyio.CancelScope(shield=True):
                    await channel.aclose()

    async def handle_raw_websocket(self, ws: WebSocketConnection, request: HTTPRequest) -> None:
        """A raw websocket (``<prefix>/websocket``): one message per text frame, no framing."""
        peer = PeerInfo("sockjs", request.remote_address, request.headers.items())
        await self.on_accept(ws, peer)


async def _set_when(event: anyio.Event, target: anyio.Event) -> None:
    await event.wait()
    target.set()


async def _send(response: HTTPResponse, answer: responses.Response) -> None:
    await response.send(answer.status, answer.headers, answer.body)
