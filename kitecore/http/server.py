"""A small HTTP/1.1 + WebSocket server on anyio and h11, with the WebSocket drivers.

One listener serves plain HTTP routes and WebSocket routes, which is what the kite needs:
the raw ``websocket`` transport mounts an upgrade route on ``/kite`` and the SockJS plugin
mounts its long-polling, streaming and websocket routes under the same prefix.

Each connection runs in its own task; whatever goes wrong in one (bad bytes, a handler that
raises, a peer that vanishes) is answered or logged once and never reaches the others.

Limits a peer meets (docs/limits.md lists them with their config fields): open connections
in all and per peer address (beyond them a new connection gets a bare ``503`` and is closed
at once, before any parsing); descriptor exhaustion only slows accepting down
(:mod:`kitecore.http.limits`); an upgraded connection silent for ``websocket_idle_timeout``
is closed with 1001 (it is pinged half-way, and a pong is traffic); bytes queued for a peer
that does not read are capped by ``max_outbound_bytes`` (close code 1008); a request head is
at most ``max_header_size`` bytes (431) and an upgrade must be HTTP/1.1.

Every request, the WebSocket upgrade included, is parsed by h11 (one parser, one path). An
upgrade is answered with ``101 Switching Protocols``; h11's ``trailing_data`` (bytes that came
after the request) and the stream go to :func:`~kitecore.http.websocket.open_websocket`, and
h11 is dropped (an upgraded connection does not keep it).

Sockets: the listener is anyio's. On the asyncio backend each accepted socket becomes an
:class:`~kitecore.http.asyncio_driver.AsyncioByteStream` (``loop.connect_accepted_socket``,
TLS through its ``ssl=``), so an upgraded connection gets the asyncio WebSocket driver; on any
other backend anyio's socket stream (wrapped in anyio's TLS stream when configured) and the
portable driver.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gc
import logging
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import anyio
import anyio.abc
import anyio.lowlevel
import h11
from anyio.abc import ByteStream, SocketAttribute, SocketListener, SocketStream
from anyio.streams.stapled import MultiListener
from anyio.streams.tls import TLSStream
from wsproto.utilities import generate_accept_token

from kitecore.http._h11io import READ_SIZE, next_event
from kitecore.http.asyncio_driver import (
    accept_socket,
    accepts_tls,
    compact_loop_tables,
    flush_loop_free_lists,
    renew_reader_tables,
    running_asyncio_loop,
    start_accepted,
)
from kitecore.http.headers import Headers
from kitecore.http.limits import (
    ConnectionLimits,
    Renewal,
    accept_forever,
    descriptor_headroom_limit,
    release_free_memory,
)
from kitecore.http.websocket import (
    DEFAULT_MAX_MESSAGE_SIZE,
    WebSocketConnection,
    open_websocket,
)
from kitecore.transport import closes_shielded

__all__ = [
    "HTTPHandler",
    "HTTPRequest",
    "HTTPResponse",
    "HTTPServer",
    "WebSocketHandler",
]

logger = logging.getLogger(__name__)

_PEER_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_monotonic = time.monotonic
#: Seconds after the close timeout (past the first release) before memory is freed again.
_RELEASE_DELAY = 1.0
#: Before freeing memory, the count of open connections must stay unchanged this long (the
#: burst of closes is over) ...
_RELEASE_STEADY = 0.5
#: ... but no longer than this is waited for that.
_RELEASE_MAX_WAIT = 30.0
#: Connections more than a crowd left open that make a new crowd, whose calls a release
#: would hold up: it waits for that crowd to go (as many as make a crowd in ConnectionLimits).
_NEW_CROWD = 64
#: Seconds from one crowd's last release to the next crowd's first: a full collection costs
#: milliseconds (tens with thousands of connections), and crowds of a few hundred can come and
#: go every second; the crowds leaving meanwhile get their memory back once this has passed.
_RELEASE_MIN_GAP = 10.0
#: What a connection over the limits gets before it is closed (nothing has been read).
_UNAVAILABLE = (
    b"HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-type: text/plain\r\n"
    b"content-length: 25\r\n\r\ntoo many open connections"
)
_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    405: b"Method Not Allowed",
    408: b"Request Timeout",
    413: b"Content Too Large",
    426: b"Upgrade Required",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


@dataclass(slots=True)
class HTTPRequest:
    """One received request, body already read.

    ``path`` is percent-decoded and has no query; ``query`` maps each name to its values;
    ``match`` is the route's regex match (``None`` for exact-string routes).
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: bytes = b""
    remote_address: str = ""
    target: str = ""
    http_version: str = "1.1"
    match: re.Match[str] | None = None

    @property
    def is_websocket_upgrade(self) -> bool:
        """Whether this is a ``GET`` asking to upgrade to WebSocket."""
        return (
            self.method == "GET"
            and self.headers.has_token("upgrade", "websocket")
            and self.headers.has_token("connection", "upgrade")
        )


#: ``async def handler(request, response) -> None`` for plain HTTP routes.
HTTPHandler = Callable[[HTTPRequest, "HTTPResponse"], Awaitable[None]]
#: ``async def handler(ws, request) -> None`` for WebSocket routes.
WebSocketHandler = Callable[[WebSocketConnection, HTTPRequest], Awaitable[None]]
#: What an accepted upgrade leaves for the WebSocket phase: the request, its handler, its
#: ``Sec-WebSocket-Key`` (checked) and the bytes that came after the request.
_Upgrade = tuple[HTTPRequest, Callable[..., Awaitable[None]], str, bytes]


class HTTPResponse:
    """The answer to one request: whole (:meth:`send`) or streamed (:meth:`start`,
    :meth:`write`, :meth:`end`).

    A streamed response without a ``Content-Length`` header uses chunked transfer-encoding
    (or is delimited by closing the connection for an HTTP/1.0 client). ``disconnected`` is
    set when the client closes its connection, which is how a long-poll handler learns that
    nobody waits for its answer any more; writing to a gone client raises
    :class:`anyio.BrokenResourceError`.
    """

    def __init__(self, conn: h11.Connection, stream: ByteStream, method: str) -> None:
        self._conn = conn
        self._stream = stream
        self._head_only = method == "HEAD"
        self.disconnected = anyio.Event()
        self.status: int | None = None
        self.started = False
        self.finished = False

    async def send(
        self, status: int, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> None:
        """Send a whole response; ``Content-Length`` is added when missing."""
        header_list = list(headers)
        if not any(name.lower() == "content-length" for name, _ in header_list):
            header_list.append(("content-length", str(len(body))))
        data = self._head(status, header_list)
        if body and not self._head_only:
            data += self._conn.send(h11.Data(data=body))
        data += self._conn.send(h11.EndOfMessage())
        self.finished = True
        await self._write(data)

    async def start(self, status: int, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Send the status line and headers of a streamed response."""
        await self._write(self._head(status, list(headers)))

    async def write(self, chunk: bytes) -> None:
        """Send one piece of a streamed response (an empty chunk is skipped)."""
        if not self.started:
            raise RuntimeError("call start() before write()")
        if self.finished:
            raise RuntimeError("the response is already complete")
        if chunk and not self._head_only:
            await self._write(self._conn.send(h11.Data(data=chunk)))

    async def end(self) -> None:
        """Finish a streamed response."""
        if not self.started:
            raise RuntimeError("call start() before end()")
        if self.finished:
            return
        self.finished = True
        await self._write(self._conn.send(h11.EndOfMessage()))

    def _head(self, status: int, headers: list[tuple[str, str]]) -> bytes:
        if self.started:
            raise RuntimeError("the response has already been started")
        self.started = True
        self.status = status
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        return self._conn.send(
            h11.Response(status_code=status, headers=raw, reason=_REASONS.get(status, b""))
        )

    async def _write(self, data: bytes) -> None:
        try:
            await self._stream.send(data)
        except _PEER_GONE as exc:
            self.disconnected.set()
            raise anyio.BrokenResourceError("the client has disconnected") from exc


@dataclass(slots=True)
class _Route:
    pattern: str | re.Pattern[str]
    handler: Callable[..., Awaitable[None]]
    methods: frozenset[str] | None = None


@dataclass(slots=True)
class _RouteTable:
    exact: dict[str, list[_Route]] = field(default_factory=dict)
    patterns: list[_Route] = field(default_factory=list)

    def add(self, route: _Route) -> None:
        if isinstance(route.pattern, str):
            self.exact.setdefault(route.pattern, []).append(route)
        else:
            self.patterns.append(route)

    def find(self, path: str) -> list[tuple[_Route, re.Match[str] | None]]:
        found: list[tuple[_Route, re.Match[str] | None]] = [
            (route, None) for route in self.exact.get(path, ())
        ]
        for route in self.patterns:
            assert isinstance(route.pattern, re.Pattern)
            match = route.pattern.fullmatch(path)
            if match is not None:
                found.append((route, match))
        return found


class _BadRequest(Exception):
    """Answer with ``status`` and close the connection."""

    def __init__(self, status: int, message: str, headers: Iterable[tuple[str, str]] = ()):
        super().__init__(message)
        self.status = status
        self.headers = list(headers)


class HTTPServer:
    """An HTTP/1.1 server with WebSocket upgrade routes.

    ``max_message_size`` limits one WebSocket message, ``max_body_size`` one request body
    (larger gets 413), ``max_header_size`` the request head (431). ``handshake_timeout`` bounds
    the time a new connection has to deliver its first request, ``idle_timeout`` the time a
    keep-alive connection may wait for its next one.

    ``max_connections`` (0: none but the descriptor limit) and ``max_connections_per_ip``
    (0: none) bound the accepted connections open at once: one more gets a ``503`` and is
    closed. The descriptor limit always applies: at most the soft ``RLIMIT_NOFILE`` less a
    reserve (see :func:`~kitecore.http.limits.descriptor_headroom_limit`).
    ``websocket_idle_timeout`` (None: none) closes an upgraded connection that received
    nothing for that long, pinging it half-way; ``max_outbound_bytes`` (None: none) caps the
    bytes queued for one WebSocket peer that does not read.
    """

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_body_size: int = 16 * 1024 * 1024,
        max_header_size: int = 64 * 1024,
        handshake_timeout: float = 15.0,
        idle_timeout: float = 60.0,
        close_timeout: float = 2.0,
        max_connections: int = 0,
        max_connections_per_ip: int = 0,
        websocket_idle_timeout: float | None = None,
        max_outbound_bytes: int | None = None,
    ) -> None:
        self.max_message_size = max_message_size
        self.max_body_size = max_body_size
        self.max_header_size = max_header_size
        self.handshake_timeout = handshake_timeout
        self.idle_timeout = idle_timeout
        self.close_timeout = close_timeout
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.websocket_idle_timeout = websocket_idle_timeout
        self.max_outbound_bytes = max_outbound_bytes
        self.host = ""
        self.port = 0
        self.limits = ConnectionLimits(0)
        self._task_group: anyio.abc.TaskGroup | None = None
        #: the task group accepted connections run in: one per generation (see
        #: :meth:`_connection_group`), and the event that retires it
        self._connections: anyio.abc.TaskGroup | None = None
        self._retire: anyio.Event | None = None
        #: the next generation's group and event, made ahead (at start, then at the end of
        #: each release, when what is made goes beside what stays)
        self._spare: tuple[anyio.abc.TaskGroup, anyio.Event] | None = None
        #: the pending accepts, made anew after a crowd
        self.renewal = Renewal()
        self._http_routes = _RouteTable()
        self._ws_routes = _RouteTable()
        self._websockets: set[WebSocketConnection] = set()
        #: set when most of a crowd of connections has gone (see :meth:`_release_memory`)
        self._release_wanted: anyio.Event | None = None
        self._release_again = False  # another crowd left while the last release ran
        #: called when memory is given back after a crowd (to rebuild long-lived tables)
        self._release_hooks: list[Callable[[], object]] = []
        self._accept_scope: anyio.CancelScope | None = None

    # --- routing -----------------------------------------------------------------------------

    def add_route(
        self,
        path: str | re.Pattern[str],
        handler: HTTPHandler,
        *,
        methods: Iterable[str] | None = None,
    ) -> None:
        """Serve plain HTTP requests for ``path`` (an exact path or a regex that must match the
        whole path) with ``handler``; ``methods`` limits the accepted methods (others: 405)."""
        allowed = frozenset(m.upper() for m in methods) if methods is not None else None
        self._http_routes.add(_Route(path, handler, allowed))

    def add_websocket_route(self, path: str | re.Pattern[str], handler: WebSocketHandler) -> None:
        """Serve WebSocket upgrade requests for ``path`` with ``handler``."""
        self._ws_routes.add(_Route(path, handler, frozenset({"GET"})))

    # --- serving -----------------------------------------------------------------------------

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        task_status: anyio.abc.TaskStatus[int] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` until cancelled; ``task_status.started(port)`` once bound.

        Cancelling closes the listener and every open connection.
        """
        tcp_listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
        limit = descriptor_headroom_limit()
        if limit is not None and self.max_connections:
            limit = min(limit, self.max_connections)
        self.limits = ConnectionLimits(limit or self.max_connections, self.max_connections_per_ip)

        async with tcp_listener, anyio.create_task_group() as tg:
            self.host = host
            self.port = tcp_listener.extra(SocketAttribute.local_port)
            self._task_group = tg
            try:
                logger.info(
                    "listening on %s:%d (at most %s connections)",
                    host,
                    self.port,
                    self.limits.max_connections or "unlimited",
                )
                if self.websocket_idle_timeout:
                    tg.start_soon(self._close_idle_websockets, self.websocket_idle_timeout)
                self._connections, self._retire = await tg.start(self._connection_group)
                self._spare = await tg.start(self._connection_group)
                self._release_wanted = anyio.Event()
                tg.start_soon(self._release_memory)
                self._accept_scope = anyio.CancelScope()
                tg.start_soon(self._accept_all, tcp_listener, ssl_context, self._accept_scope)
                task_status.started(self.port)
                await anyio.sleep_forever()
            finally:
                self._task_group = None
                self._connections = self._retire = None
                self._spare = None
                self._accept_scope = None
                self._release_wanted = None

    async def _accept_all(
        self,
        tcp_listener: MultiListener[SocketStream],
        ssl_context: ssl.SSLContext | None,
        scope: anyio.CancelScope,
    ) -> None:
        """Accept on every listener until ``scope`` is cancelled (:meth:`stop_accepting`),
        then close them: new connections are refused by the system from then on.

        On asyncio the listening sockets are accepted from with ``loop.sock_accept`` (the
        connections become asyncio transports of ours); elsewhere through anyio."""
        loop = running_asyncio_loop()
        on_asyncio = loop is not None and (ssl_context is None or accepts_tls(loop))
        with scope:
            async with anyio.create_task_group() as tg:
                for listener in tcp_listener.listeners:
                    if not isinstance(listener, SocketListener):  # (what create_tcp_listener makes)
                        raise TypeError(f"not a socket listener: {listener!r}")
                    if on_asyncio:
                        sock: socket.socket = listener.extra(SocketAttribute.raw_socket)
                        tg.start_soon(
                            accept_forever,
                            functools.partial(accept_socket, sock, self.renewal),
                            functools.partial(self._admit_socket, tls=ssl_context),
                        )
                    else:
                        tg.start_soon(
                            accept_forever,
                            listener.accept,
                            functools.partial(self._admit, tls=ssl_context),
                        )
        with anyio.CancelScope(shield=True):
            await tcp_listener.aclose()

    def stop_accepting(self) -> None:
        """Stop accepting new connections and close the listening sockets; the connections
        already open are served on (graceful shutdown). Idempotent."""
        if self._accept_scope is not None:
            self._accept_scope.cancel()

    @property
    def accepting(self) -> bool:
        """Whether the server is running and accepting new connections."""
        scope = self._accept_scope
        return scope is not None and not scope.cancel_called

    @property
    def serving(self) -> bool:
        """Whether :meth:`serve` is running."""
        return self._task_group is not None

    def start_soon(self, func: Callable[..., Awaitable[object]], *args: object) -> None:
        """Run ``func(*args)`` as a task of the running server, cancelled when it stops.

        For in-process connections (the loopback transport) that must live as long as the
        server, like accepted sockets do. An exception in the task is logged, never raised.
        Raises :class:`ConnectionRefusedError` when the server is not running.
        """
        if self._task_group is None:
            raise ConnectionRefusedError("the HTTP server is not running")
        self._task_group.start_soon(self._run_logged, func, args)

    @staticmethod
    async def _run_logged(func: Callable[..., Awaitable[object]], args: tuple[object, ...]) -> None:
        try:
            await func(*args)
        except Exception:
            logger.exception("server task %r failed", func)

    async def _admit_socket(self, sock: socket.socket, *, tls: ssl.SSLContext | None) -> None:
        """Start serving a socket accepted on asyncio, or turn it away at once when over a
        limit."""
        try:
            remote: Any = sock.getpeername()
        except OSError:  # gone already
            sock.close()
            return
        host = str(remote[0]) if isinstance(remote, tuple) and remote else str(remote or "")
        refusal = self.limits.admit(host)
        if refusal is None:
            assert self._connections is not None  # (accepting only while serving)
            self._connections.start_soon(self._on_accept_socket, sock, remote, host, tls)
            return
        logger.debug("refused a connection from %s: %s", host, refusal)
        if tls is None:
            try:  # nothing is buffered yet: a direct, non-blocking send is in order
                sock.send(_UNAVAILABLE)
            except OSError:
                pass
        sock.close()

    async def _on_accept_socket(
        self, sock: socket.socket, remote: object, host: str, tls: ssl.SSLContext | None
    ) -> None:
        try:
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            try:
                stream = await start_accepted(sock, tls, self.handshake_timeout)
            except (OSError, TimeoutError) as exc:  # (ssl.SSLError is an OSError)
                logger.debug("connection from %s failed before HTTP: %r", host, exc)
                sock.close()
                return
            address = _format_address(remote)
            del remote, sock  # not kept for the connection's life
            await self.handle_connection(stream, address)
        finally:
            self._released(host)

    async def _admit(self, stream: SocketStream, *, tls: ssl.SSLContext | None) -> None:
        """Start serving an accepted connection, or turn it away at once when over a limit."""
        ssl_context = tls
        # one look at the attribute table (``extra()`` builds it anew on every call)
        attributes = stream.extra_attributes
        get_remote = attributes.get(SocketAttribute.remote_address)
        remote = get_remote() if get_remote is not None else None
        host = str(remote[0]) if isinstance(remote, tuple) and remote else str(remote or "")
        refusal = self.limits.admit(host)
        if refusal is None:
            assert self._connections is not None  # (accepting only while serving)
            self._connections.start_soon(
                self._on_accept, stream, attributes, remote, host, ssl_context
            )
            return
        logger.debug("refused a connection from %s: %s", host, refusal)
        if ssl_context is None:
            try:
                with anyio.move_on_after(1):
                    await stream.send(_UNAVAILABLE)
            except _PEER_GONE:
                pass
        await _aclose_quietly(stream)

    async def _on_accept(
        self,
        stream: ByteStream,
        attributes: Mapping[Any, Callable[[], Any]],
        remote: object,
        host: str,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        try:
            get_socket = attributes.get(SocketAttribute.raw_socket)
            raw_socket: socket.socket | None = get_socket() if get_socket is not None else None
            if raw_socket is not None and raw_socket.family in (socket.AF_INET, socket.AF_INET6):
                try:
                    raw_socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            if ssl_context is not None:
                try:
                    with anyio.fail_after(self.handshake_timeout):
                        stream = await TLSStream.wrap(
                            stream, ssl_context=ssl_context, standard_compatible=False
                        )
                except (OSError, TimeoutError, *_PEER_GONE) as exc:
                    # port scanners, plain-HTTP clients, stalled handshakes: one DEBUG line
                    # (asyncio's own TLS handshake, on the other path, logs them so too)
                    logger.debug("TLS handshake with %s failed: %r", host, exc)
                    await anyio.aclose_forcefully(stream)
                    return
            del attributes, get_socket, raw_socket  # not kept for the connection's life
            await self.handle_connection(stream, _format_address(remote))
        finally:
            self._released(host)

    def _released(self, host: str) -> None:
        """A connection counted by the limits is over."""
        if self.limits.release(host) and self._release_wanted is not None:
            if self._release_wanted.is_set():  # (a release is under way: once more after it)
                self._release_again = True
            self._release_wanted.set()

    async def _release_memory(self) -> None:
        """Each time most of a crowd of connections has gone: once the burst of closes is
        over (the count of open connections steady for a moment), give free memory back to
        the system and make anew what must outlive the crowd (:meth:`_renew`), and once more
        after the close timeout; the next crowd's release no sooner than
        :data:`_RELEASE_MIN_GAP` after that (deferred, never skipped).

        A task started with the server, not one per crowd: what a task started amid the
        closes allocates (its frame, its task-group bookkeeping) would still be alive at the
        release, and pin the memory pages the closes freed around it."""
        next_allowed = anyio.current_time()
        while True:
            wanted = self._release_wanted
            if wanted is None:  # pragma: no cover - set before this task starts
                return
            await wanted.wait()
            # what the crowd left open: more than that, and a new crowd is being served
            left = self.limits.open
            # not sooner than _RELEASE_MIN_GAP after the last crowd's (a crowd leaving
            # meanwhile is covered by this one's release)
            if anyio.current_time() < next_allowed:
                await anyio.sleep(next_allowed - anyio.current_time())
            self._release_again = False
            deadline = anyio.current_time() + _RELEASE_MAX_WAIT
            count = -1
            while self.limits.open != count and anyio.current_time() < deadline:
                count = self.limits.open  # (still closing: wait until it stops)
                await anyio.sleep(_RELEASE_STEADY)
            await self._while_crowded(left)
            release_free_memory()
            # What must outlive the crowd is made anew only once the crowd's garbage is gone:
            # made earlier, it could land beside that garbage and keep its arenas.
            await self._renew(rotate=False)
            # Again once what the closes left is gone too (transports still sending their
            # last bytes, aborted after the close timeout; the event loop's own bookkeeping).
            await anyio.sleep(self.close_timeout + _RELEASE_DELAY)
            await self._while_crowded(left)
            release_free_memory()
            await self._renew()
            self._release_wanted = wanted = anyio.Event()
            if self._release_again:  # (a crowd left meanwhile: once more)
                wanted.set()
            del wanted
            for _ in range(3):  # the retired task groups end (their tables were the crowd's)
                await anyio.lowlevel.checkpoint()
            release_free_memory()
            if running_asyncio_loop() is not None:
                # once more now that nothing of the crowd's is left (the old task group has
                # ended): what the free lists kept from the last flush, made while the group
                # and the objects made anew were still beside it, goes, and its arena with it
                # (pymalloc unmaps an arena as soon as it is empty: no trim needed)
                await flush_loop_free_lists()
            # and the pending accept once more: its wait was made anew while the group and
            # the free lists' last objects were still there (made anew, its objects go where
            # there is room now; the old ones, freed first, free their memory pools)
            self.renewal.renew()
            for _ in range(3):
                await anyio.lowlevel.checkpoint()
            loop = running_asyncio_loop()
            if loop is not None:  # (after the accept's last wait was registered)
                renew_reader_tables(loop)
            if self._spare is None and self._task_group is not None:
                # the next generation's group, made last: beside what stays
                self._spare = await self._task_group.start(self._connection_group)
            next_allowed = anyio.current_time() + _RELEASE_MIN_GAP

    async def _while_crowded(self, left: int) -> None:
        """Wait while a new crowd is served (at least :data:`_NEW_CROWD` connections more
        than the ``left`` the last one left behind): the release (a full collection,
        milliseconds) would hold up its calls. It waits for that crowd to go (whose memory it
        then releases too), at most :data:`_RELEASE_MAX_WAIT`; on a server no new crowd came
        to, it returns at once."""
        deadline = anyio.current_time() + _RELEASE_MAX_WAIT
        while self.limits.open >= left + _NEW_CROWD and anyio.current_time() < deadline:  # noqa: ASYNC110
            await anyio.sleep(_RELEASE_STEADY)

    def on_release(self, hook: Callable[[], object]) -> None:
        """Call ``hook()`` each time memory is given back after a crowd of connections has
        gone (to rebuild a table that kept the crowd's size, say)."""
        self._release_hooks.append(hook)

    async def _renew(self, *, rotate: bool = True) -> None:
        """After a crowd has gone: make anew what was made while it was there and must
        outlive it (the pending accepts, a new task group for the connections to come, the
        tables of the release hooks), so that it no longer keeps the crowd's memory arenas.
        (Timers need nothing: a sweeper's next sleep is made when it wakes.)"""
        # first what may have been made amid the crowd: once it is gone, so are the last
        # objects in its arenas, and what is made next goes beside the long-lived ones; the
        # loop's free lists first of all (the crowd's objects they keep would have what is
        # made anew next placed beside them, in the crowd's arenas)
        if running_asyncio_loop() is not None:
            await flush_loop_free_lists()
        for hook in self._release_hooks:
            hook()
        self.renewal.renew()
        for _ in range(3):  # the renewed waits start again (a loop pass or two)
            await anyio.lowlevel.checkpoint()
        gc.collect()  # (what they left in reference cycles)
        self._websockets = set(self._websockets)  # a set never shrinks by itself
        loop = running_asyncio_loop()
        if loop is not None:  # asyncio's tables of tasks and descriptors, at the crowd's size
            compact_loop_tables(loop)
        retire, spare = self._retire, self._spare
        if rotate and retire is not None and spare is not None:
            # the task sets of anyio's task group and cancel scope held every connection of
            # the crowd and stay at that size; the old group ends with its last connection.
            # The next group was made ahead: made now, its objects would go where objects
            # still alive left room, in the crowd's memory, and stay there alone once those
            # have gone (its replacement is made at the end of the release)
            self._connections, self._retire = spare
            self._spare = None
            retire.set()

    @staticmethod
    async def _connection_group(
        *,
        task_status: anyio.abc.TaskStatus[tuple[anyio.abc.TaskGroup, anyio.Event]],
    ) -> None:
        """Host a task group for accepted connections until the event it hands out with the
        group is set, then until its last connection has ended (cancelled with the server)."""
        retire = anyio.Event()
        async with anyio.create_task_group() as tg:
            task_status.started((tg, retire))
            await retire.wait()

    async def _close_idle_websockets(self, timeout: float) -> None:
        """Every quarter of ``timeout``: ping the upgraded connections silent for half of it,
        close (1001) those silent for all of it."""
        while True:
            await anyio.sleep(timeout / 4)
            now = _monotonic()
            for ws in list(self._websockets):
                silent = now - ws.last_received
                if silent >= timeout:
                    self._websockets.discard(ws)
                    self.start_soon(ws.aclose, 1001, "idle timeout")
                elif silent >= timeout / 2 and ws.ping_nowait():
                    self.start_soon(ws.flush)

    async def handle_connection(self, stream: ByteStream, remote_address: str = "") -> None:
        """Serve one accepted connection until it closes; never raises (errors are logged)."""
        conn: h11.Connection | None = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self.max_header_size
        )
        try:
            assert conn is not None
            upgrade = await self._serve_requests(conn, stream, remote_address)
            if upgrade is not None:
                conn = None  # an upgraded connection does not keep h11 for its life
                await self._serve_websocket(stream, *upgrade)
        except _BadRequest as exc:
            logger.debug("bad request from %s: %s", remote_address, exc)
            if conn is not None:
                await _send_error(conn, stream, exc.status, str(exc), exc.headers)
        except h11.RemoteProtocolError as exc:
            logger.debug("invalid HTTP from %s: %s", remote_address, exc)
            if conn is not None:
                await _send_error(conn, stream, exc.error_status_hint, str(exc))
        except TimeoutError:
            logger.debug("connection from %s timed out", remote_address)
        except _PEER_GONE:
            pass
        except Exception:
            logger.exception("error serving connection from %s", remote_address)
        finally:
            if closes_shielded(stream):  # nothing to shield (a cancel scope costs microseconds)
                await _aclose_quietly(stream)
            else:
                with anyio.CancelScope(shield=True):
                    await _aclose_quietly(stream)

    async def _serve_requests(
        self, conn: h11.Connection, stream: ByteStream, remote_address: str
    ) -> _Upgrade | None:
        """Serve plain requests until the connection ends (None) or one is an accepted
        WebSocket upgrade (returned, answer not yet sent)."""
        timeout = self.handshake_timeout
        while True:
            with anyio.fail_after(timeout):
                event = await next_event(conn, stream)
                if isinstance(event, h11.ConnectionClosed):
                    return None
                assert isinstance(event, h11.Request)
                if _head_size(event) > self.max_header_size:
                    # h11 checks its buffer only while a head is incomplete, so a head that
                    # completes within the same read may pass its limit by up to a read
                    raise _BadRequest(431, f"request head over {self.max_header_size} bytes")
                request = _make_request(event, remote_address)
                body = await self._read_body(conn, stream, event)
            request.body = body
            if request.is_websocket_upgrade:
                candidates = self._ws_routes.find(request.path)
                if candidates:
                    if request.http_version != "1.1":  # RFC 6455 section 4.1
                        raise _BadRequest(400, "a websocket upgrade needs HTTP/1.1")
                    route, request.match = candidates[0]
                    key = _upgrade_key(request)
                    return request, route.handler, key, conn.trailing_data[0]
            if not await self._run_http(conn, stream, request):
                return None
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return None
            conn.start_next_cycle()
            timeout = self.idle_timeout

    async def _read_body(
        self, conn: h11.Connection, stream: ByteStream, event: h11.Request
    ) -> bytes:
        for name, value in event.headers:
            if name == b"content-length" and int(value) > self.max_body_size:
                raise _BadRequest(413, f"request body over {self.max_body_size} bytes")
        if conn.they_are_waiting_for_100_continue:
            await stream.send(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        chunks: list[bytes] = []
        size = 0
        while True:
            part = await next_event(conn, stream)
            if isinstance(part, h11.Data):
                size += len(part.data)
                if size > self.max_body_size:
                    raise _BadRequest(413, f"request body over {self.max_body_size} bytes")
                chunks.append(part.data)
            elif isinstance(part, h11.EndOfMessage):
                return b"".join(chunks)
            else:
                raise _BadRequest(400, "connection closed inside the request body")

    async def _run_http(
        self, conn: h11.Connection, stream: ByteStream, request: HTTPRequest
    ) -> bool:
        """Dispatch one plain request; return whether the connection may be reused."""
        candidates = self._http_routes.find(request.path)
        if not candidates:
            await _send_error(conn, stream, 404, f"no route for {request.path}", close=False)
            return True
        for route, match in candidates:
            if route.methods is None or request.method in route.methods:
                request.match = match
                handler = route.handler
                break
        else:
            allowed = sorted({m for route, _ in candidates for m in route.methods or ()})
            await _send_error(
                conn,
                stream,
                405,
                f"{request.method} not allowed",
                [("allow", ", ".join(allowed))],
                close=False,
            )
            return True

        response = HTTPResponse(conn, stream, request.method)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_disconnect, conn, stream, response)
            try:
                await handler(request, response)
            except Exception as exc:
                if response.disconnected.is_set():
                    logger.debug("client %s went away: %r", request.remote_address, exc)
                    return False
                logger.exception("HTTP handler for %s %s failed", request.method, request.path)
                if not response.started:
                    await _send_error(conn, stream, 500, "internal server error")
                return False
            finally:
                tg.cancel_scope.cancel()
        if response.disconnected.is_set():
            return False
        if not response.started:
            logger.error("HTTP handler for %s %s sent no response", request.method, request.path)
            await _send_error(conn, stream, 500, "handler sent no response")
            return False
        if not response.finished:
            await response.end()
        return True

    async def _watch_disconnect(
        self, conn: h11.Connection, stream: ByteStream, response: HTTPResponse
    ) -> None:
        """Read while a handler runs, to notice the client closing its connection.

        Bytes read here (a pipelined next request) go to h11's buffer and are not lost.
        """
        while True:
            try:
                data = await stream.receive(READ_SIZE)
            except _PEER_GONE:
                response.disconnected.set()
                return
            conn.receive_data(data)
            if len(conn.trailing_data[0]) > self.max_header_size:
                await anyio.sleep_forever()

    async def _serve_websocket(
        self,
        stream: ByteStream,
        request: HTTPRequest,
        handler: Callable[..., Awaitable[None]],
        key: str,
        trailing: bytes,
    ) -> None:
        """Send the ``101`` answer to the upgrade with ``key`` and run ``handler`` on the
        upgraded stream (the answer is not kept for the connection's life)."""
        await stream.send(_accept_head(key))
        ws = open_websocket(
            stream,
            client=False,
            max_message_size=self.max_message_size,
            initial_data=trailing,
            close_timeout=self.close_timeout,
            max_outbound_bytes=self.max_outbound_bytes,
        )
        if self.websocket_idle_timeout:
            self._websockets.add(ws)
        try:
            await handler(ws, request)
        except (*_PEER_GONE, anyio.BusyResourceError) as exc:
            logger.debug(
                "websocket %s from %s ended: %r", request.path, request.remote_address, exc
            )
        except Exception:
            logger.exception("websocket handler for %s failed", request.path)
            await ws.aclose(1011, "internal error")
        finally:
            self._websockets.discard(ws)
            await ws.aclose(1000)


async def _aclose_quietly(stream: ByteStream) -> None:
    try:
        await stream.aclose()
    except (anyio.BrokenResourceError, OSError):
        pass


def _format_address(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(address) if address else ""


def _head_size(event: h11.Request) -> int:
    """The size of the request head ``event`` was parsed from (give or take whitespace)."""
    size = len(event.method) + len(event.target) + 14  # "M T HTTP/1.1\r\n" + the last CRLF
    for name, value in event.headers:
        size += len(name) + len(value) + 4
    return size


def _make_request(event: h11.Request, remote_address: str) -> HTTPRequest:
    return _request_from(
        event.method.decode("ascii"),
        event.target.decode("latin-1"),
        Headers.from_raw(event.headers),
        event.http_version.decode("ascii"),
        remote_address,
    )


def _request_from(
    method: str, target: str, headers: Headers, http_version: str, remote_address: str
) -> HTTPRequest:
    raw_path, _, query = target.partition("?")
    try:
        path = unquote(raw_path, errors="strict")
        parsed_query = parse_qs(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise _BadRequest(400, "request target is not valid UTF-8") from None
    if not path.startswith("/"):
        raise _BadRequest(400, "only origin-form request targets are supported")
    return HTTPRequest(
        method=method,
        path=path,
        query=parsed_query,
        headers=headers,
        remote_address=remote_address,
        target=target,
        http_version=http_version,
    )


def _upgrade_key(request: HTTPRequest) -> str:
    """The request's ``Sec-WebSocket-Key``; :class:`_BadRequest` (426 or 400) when the
    version is not 13 or the key is not 16 bytes in base64."""
    version = request.headers.get("sec-websocket-version")
    if version != "13":
        raise _BadRequest(426, "unsupported websocket version", [("sec-websocket-version", "13")])
    key = request.headers.get("sec-websocket-key", "") or ""
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise _BadRequest(400, "missing or invalid Sec-WebSocket-Key")
    return key


def _accept_head(key: str) -> bytes:
    """The ``101`` answer to an upgrade with ``key`` (no extension, no subprotocol)."""
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        b"sec-websocket-accept: " + generate_accept_token(key.encode("ascii")) + b"\r\n\r\n"
    )


async def _send_error(
    conn: h11.Connection,
    stream: ByteStream,
    status: int,
    message: str,
    headers: Iterable[tuple[str, str]] = (),
    *,
    close: bool = True,
) -> None:
    """Answer with a small text error if a response can still be sent; never raises."""
    if conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
        return
    body = message.encode() + b"\n"
    raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
    raw += [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"%d" % len(body))]
    if close:
        raw.append((b"connection", b"close"))
    try:
        data = conn.send(
            h11.Response(status_code=status, headers=raw, reason=_REASONS.get(status, b""))
        )
        data += conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage())
        with anyio.move_on_after(5):
            await stream.send(data)
    except (h11.LocalProtocolError, *_PEER_GONE):
        pass
