"""HTTP/1.1 and WebSocket client side: :func:`connect_websocket` and :class:`HTTPClient`.

``connect_websocket`` dials ``ws://``/``wss://`` (``http``/``https`` are mapped to them) and
returns a :class:`WebSocketConnection`; an answer other than ``101`` raises
:class:`HandshakeError`, which is what a SockJS client falls back to XHR on.

``HTTPClient`` is the small keep-alive client the SockJS XHR transports need: whole requests,
streamed response bodies, one cookie jar per client (sticky load balancers).

Errors: a refused or unreachable host raises the :class:`OSError` from the socket layer, a
timeout :class:`TimeoutError`, a malformed or cut answer :class:`HTTPProtocolError`.
"""

from __future__ import annotations

import base64
import logging
import os
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

import anyio
import h11
from anyio.abc import ByteStream
from wsproto.utilities import generate_accept_token

from kitecore.http._h11io import next_event
from kitecore.http.asyncio_driver import connect_tcp, running_asyncio_loop
from kitecore.http.errors import HandshakeError, HTTPProtocolError
from kitecore.http.headers import Headers
from kitecore.http.websocket import DEFAULT_MAX_MESSAGE_SIZE, WebSocketConnection, open_websocket

__all__ = ["HTTPClient", "HTTPResult", "StreamingResponse", "connect_websocket"]

logger = logging.getLogger(__name__)

_STREAM_ERRORS = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError)
_MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Target:
    """A URL split into what a request needs."""

    secure: bool
    host: str
    port: int
    target: str
    host_header: str
    origin: str

    @property
    def key(self) -> tuple[bool, str, int]:
        return (self.secure, self.host, self.port)


def _parse_url(url: str, *, websocket: bool) -> _Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme in ("ws", "http"):
        secure = False
    elif scheme in ("wss", "https"):
        secure = True
    else:
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
    if websocket is False and scheme in ("ws", "wss"):
        raise ValueError(f"not an HTTP URL: {url!r}")
    host = parts.hostname
    if not host:
        raise ValueError(f"URL has no host: {url!r}")
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    netloc = parts.netloc.rpartition("@")[2]
    return _Target(
        secure=secure,
        host=host,
        port=port,
        target=target,
        host_header=netloc,
        origin=f"{scheme}://{netloc}",
    )


async def _open_stream(target: _Target, ssl_context: ssl.SSLContext | None) -> ByteStream:
    """A connection to the target: on asyncio an
    :class:`~kitecore.http.asyncio_driver.AsyncioByteStream` (``loop.create_connection``), so a
    WebSocket gets the asyncio driver; elsewhere anyio's (TLS) stream."""
    context = (ssl_context or ssl.create_default_context()) if target.secure else None
    if running_asyncio_loop() is not None:
        return await connect_tcp(target.host, target.port, context)
    if context is not None:
        return await anyio.connect_tcp(
            target.host, target.port, ssl_context=context, tls_standard_compatible=False
        )
    return await anyio.connect_tcp(target.host, target.port)


def _encode_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


# --- WebSocket -------------------------------------------------------------------------------


async def connect_websocket(
    url: str,
    *,
    headers: Iterable[tuple[str, str]] = (),
    handshake_timeout: float = 15.0,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    ssl_context: ssl.SSLContext | None = None,
    close_timeout: float = 2.0,
) -> WebSocketConnection:
    """Open a WebSocket connection to ``url`` and return it once the handshake succeeded.

    ``headers`` are added to the upgrade request; an ``Origin`` of ``<scheme>://<host>`` of the
    URL is sent unless given. Raises :class:`HandshakeError` for a non-101 answer,
    :class:`TimeoutError` after ``handshake_timeout`` seconds, :class:`OSError` when the host
    cannot be reached.
    """
    target = _parse_url(url, websocket=True)
    try:
        with anyio.fail_after(handshake_timeout):
            stream = await _open_stream(target, ssl_context)
            try:
                return await _client_handshake(
                    stream, target, list(headers), max_message_size, close_timeout
                )
            except BaseException:
                await anyio.aclose_forcefully(stream)
                raise
    except TimeoutError:
        raise TimeoutError(
            f"websocket handshake with {url} timed out after {handshake_timeout}s"
        ) from None


async def _client_handshake(
    stream: ByteStream,
    target: _Target,
    headers: list[tuple[str, str]],
    max_message_size: int,
    close_timeout: float,
) -> WebSocketConnection:
    key = base64.b64encode(os.urandom(16))
    given = {name.lower() for name, _ in headers}
    request_headers = [
        ("host", target.host_header),
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", key.decode("ascii")),
        ("sec-websocket-version", "13"),
    ]
    if "origin" not in given:
        request_headers.append(("origin", target.origin))
    request_headers += [(n, v) for n, v in headers if n.lower() not in ("host", "connection")]
    raw_headers = _encode_headers(request_headers)

    conn = h11.Connection(h11.CLIENT)
    request = h11.Request(method="GET", target=target.target, headers=raw_headers)
    try:
        await stream.send(conn.send(request) + conn.send(h11.EndOfMessage()))
        while True:
            event = await next_event(conn, stream)
            if isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    break
                continue  # 100 Continue and friends
            if isinstance(event, h11.Response):
                body = await _read_error_body(conn, stream)
                raise HandshakeError(event.status_code, body)
            raise HTTPProtocolError("connection closed during the websocket handshake")
        raw_answer = list(event.headers)
        trailing, _ = conn.trailing_data
    except h11.RemoteProtocolError as exc:
        raise HTTPProtocolError(f"invalid answer to the websocket handshake: {exc}") from exc
    except _STREAM_ERRORS as exc:
        raise HTTPProtocolError("connection lost during the websocket handshake") from exc
    del conn

    answer = Headers.from_raw(raw_answer)
    if not answer.has_token("upgrade", "websocket") or not answer.has_token(
        "connection", "upgrade"
    ):
        raise HandshakeError(101, b"", "101 answer without Upgrade: websocket")
    if answer.get("sec-websocket-accept", "") != generate_accept_token(key).decode("ascii"):
        raise HandshakeError(101, b"", "wrong Sec-WebSocket-Accept")
    if answer.get("sec-websocket-extensions"):
        raise HandshakeError(101, b"", "server chose an extension that was not offered")
    return open_websocket(
        stream,
        client=True,
        max_message_size=max_message_size,
        initial_data=trailing,
        close_timeout=close_timeout,
    )


async def _read_error_body(conn: h11.Connection, stream: ByteStream) -> bytes:
    """The start of a refused handshake's body (best effort, bounded)."""
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.move_on_after(2):
            while size < _MAX_ERROR_BODY:
                event = await next_event(conn, stream)
                if not isinstance(event, h11.Data):
                    break
                chunks.append(event.data)
                size += len(event.data)
    except h11.RemoteProtocolError:
        pass
    return b"".join(chunks)[:_MAX_ERROR_BODY]


# --- plain HTTP ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HTTPResult:
    """A whole HTTP response."""

    status: int
    headers: Headers
    body: bytes


class _PooledConnection:
    """One keep-alive connection to a host."""

    __slots__ = ("conn", "stream")

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)

    async def aclose(self) -> None:
        await anyio.aclose_forcefully(self.stream)


class StreamingResponse:
    """A response whose body is read piece by piece: ``async for chunk in response``."""

    def __init__(self, status: int, headers: Headers, connection: _PooledConnection) -> None:
        self.status = status
        self.headers = headers
        self._connection = connection
        self.complete = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        conn, stream = self._connection.conn, self._connection.stream
        while not self.complete:
            try:
                event = await next_event(conn, stream)
            except h11.RemoteProtocolError as exc:
                raise HTTPProtocolError(f"response body cut short: {exc}") from exc
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                self.complete = True
            else:
                raise HTTPProtocolError("connection closed inside the response body")

    async def aread(self, limit: int | None = None) -> bytes:
        """Read the whole (remaining) body; more than ``limit`` bytes raises HTTPProtocolError."""
        chunks: list[bytes] = []
        size = 0
        async for chunk in self:
            size += len(chunk)
            if limit is not None and size > limit:
                raise HTTPProtocolError(f"response body over {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


class HTTPClient:
    """A keep-alive HTTP/1.1 client with one cookie jar.

    Idle connections are kept per host (at most ``max_idle_per_host``) and reused; a request
    that fails on a reused connection before any answer arrived is retried once on a new one
    (the server may have closed the idle connection). Use as ``async with HTTPClient() as c``
    or call :meth:`aclose`.
    """

    def __init__(
        self,
        *,
        timeout: float = 30.0,
        max_body_size: int = 16 * 1024 * 1024,
        max_idle_per_host: int = 4,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_body_size = max_body_size
        self.max_idle_per_host = max_idle_per_host
        self._ssl_context = ssl_context
        self._idle: dict[tuple[bool, str, int], list[_PooledConnection]] = {}
        #: host name -> cookie name -> value, filled from ``Set-Cookie`` answers.
        self.cookies: dict[str, dict[str, str]] = {}
        self._closed = False

    async def __aenter__(self) -> HTTPClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close every idle connection."""
        self._closed = True
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        timeout: float | None = None,
    ) -> HTTPResult:
        """Send one request and read the whole answer within ``timeout`` seconds."""
        limit = self.timeout if timeout is None else timeout
        try:
            with anyio.fail_after(limit):
                async with self.stream(method, url, headers=headers, body=body) as response:
                    data = await response.aread(self.max_body_size)
        except TimeoutError:
            raise TimeoutError(f"{method} {url} timed out after {limit}s") from None
        return HTTPResult(response.status, response.headers, data)

    @asynccontextmanager
    async def stream(
        self,
        method: str,
        url: str,
        *,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        timeout: float | None = None,
    ) -> AsyncIterator[StreamingResponse]:
        """Send one request and yield the response once its head arrived (within ``timeout``);
        iterate over it for the body. The connection is reused only if the body was read."""
        if self._closed:
            raise RuntimeError("the HTTPClient is closed")
        target = _parse_url(url, websocket=False)
        request = self._build_request(method, target, list(headers), body)
        limit = self.timeout if timeout is None else timeout
        try:
            with anyio.fail_after(limit):
                connection, response = await self._send(target, request, body)
        except TimeoutError:
            raise TimeoutError(f"{method} {url} timed out after {limit}s") from None
        try:
            yield response
        except BaseException:
            await connection.aclose()
            raise
        await self._release(target, connection, response.complete)

    def _build_request(
        self, method: str, target: _Target, headers: list[tuple[str, str]], body: bytes
    ) -> h11.Request:
        given = {name.lower() for name, _ in headers}
        all_headers = [("host", target.host_header)] if "host" not in given else []
        all_headers += headers
        if "content-length" not in given and (body or method.upper() in ("POST", "PUT", "PATCH")):
            all_headers.append(("content-length", str(len(body))))
        jar = self.cookies.get(target.host)
        if jar and "cookie" not in given:
            all_headers.append(("cookie", "; ".join(f"{n}={v}" for n, v in jar.items())))
        return h11.Request(
            method=method.upper(), target=target.target, headers=_encode_headers(all_headers)
        )

    async def _send(
        self, target: _Target, request: h11.Request, body: bytes
    ) -> tuple[_PooledConnection, StreamingResponse]:
        while True:
            connection, reused = await self._acquire(target)
            try:
                response = await self._exchange(connection, request, body)
            except (HTTPProtocolError, *_STREAM_ERRORS, OSError) as exc:
                await connection.aclose()
                if reused:
                    logger.debug("reused connection to %s failed (%r), retrying", target.host, exc)
                    continue
                if isinstance(exc, _STREAM_ERRORS):
                    raise HTTPProtocolError(f"connection to {target.host} lost") from exc
                raise
            except BaseException:
                await connection.aclose()
                raise
            self._store_cookies(target, response.headers)
            return connection, response

    async def _exchange(
        self, connection: _PooledConnection, request: h11.Request, body: bytes
    ) -> StreamingResponse:
        conn = connection.conn
        data = conn.send(request)
        if body:
            data += conn.send(h11.Data(data=body))
        data += conn.send(h11.EndOfMessage())
        await connection.stream.send(data)
        while True:
            try:
                event = await next_event(conn, connection.stream)
            except h11.RemoteProtocolError as exc:
                raise HTTPProtocolError(f"invalid HTTP answer: {exc}") from exc
            if isinstance(event, h11.InformationalResponse):
                continue
            if isinstance(event, h11.Response):
                return StreamingResponse(
                    event.status_code, Headers.from_raw(event.headers), connection
                )
            raise HTTPProtocolError("connection closed before an answer arrived")

    async def _acquire(self, target: _Target) -> tuple[_PooledConnection, bool]:
        idle = self._idle.get(target.key)
        if idle:
            return idle.pop(), True
        stream = await _open_stream(target, self._ssl_context)
        return _PooledConnection(stream), False

    async def _release(
        self, target: _Target, connection: _PooledConnection, complete: bool
    ) -> None:
        conn = connection.conn
        if (
            complete
            and not self._closed
            and conn.our_state is h11.DONE
            and conn.their_state is h11.DONE
        ):
            conn.start_next_cycle()
            idle = self._idle.setdefault(target.key, [])
            if len(idle) < self.max_idle_per_host:
                idle.append(connection)
                return
        await connection.aclose()

    def _store_cookies(self, target: _Target, headers: Headers) -> None:
        for value in headers.get_all("set-cookie"):
            pair = value.split(";", 1)[0]
            name, sep, cookie_value = pair.partition("=")
            if sep and name.strip():
                self.cookies.setdefault(target.host, {})[name.strip()] = cookie_value.strip()
