"""What a WebSocket route handler and :func:`~kitecore.http.connect_websocket` give you.

:class:`WebSocketConnection` is the interface: an anyio object stream of whole text messages
plus the close code, a keepalive ping and the stream abilities of
:mod:`kitecore.transport`. Two drivers implement it, each composing one sans-IO
:class:`~kitecore.http.wscore.WebSocketCore` (frames, close handshake, limits):

* :class:`kitecore.http.anyio_driver.AnyioWebSocket` on any anyio byte stream (trio, TLS,
  test doubles);
* :class:`kitecore.http.asyncio_driver.AsyncioWebSocket`, an ``asyncio.Protocol`` on a
  transport this package opened itself (the server's accepted sockets and the client's
  connections on the asyncio backend, TLS included): no task switch per message.

:func:`open_websocket` picks the driver for a byte stream after an opening handshake.
"""

from __future__ import annotations

from abc import abstractmethod

from anyio.abc import ByteStream, ObjectStream

from kitecore.http.wscore import (
    DEFAULT_MAX_MESSAGE_SIZE,
    OUTBOUND_LIMIT_CLOSE,
    WRITE_HIGH_WATER,
    WebSocketCore,
)

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "OUTBOUND_LIMIT_CLOSE",
    "WRITE_HIGH_WATER",
    "WebSocketConnection",
    "open_websocket",
]


class WebSocketConnection(ObjectStream[str]):
    """One open WebSocket connection carrying text messages.

    :meth:`receive` returns one whole text message and must be called by one task at a time;
    it raises :class:`anyio.EndOfStream` once the peer closed (or vanished) and every message
    it sent before was returned, :class:`anyio.ClosedResourceError` after a local
    :meth:`aclose`, and :class:`~kitecore.http.errors.WebSocketProtocolError` (once) when
    the peer broke the protocol. :meth:`send` may be called from many tasks at once; on a
    closed connection it raises :class:`anyio.BrokenResourceError` (ClosedResourceError after
    :meth:`aclose`).

    ``close_code`` / ``close_reason`` say why the connection ended (see
    :class:`~kitecore.http.wscore.WebSocketCore`); ``last_received`` is the
    :func:`time.monotonic` time bytes last came from the peer (what an idle timeout reads).
    """

    #: The protocol state (shared by nothing else; drivers only move bytes).
    core: WebSocketCore
    last_received: float

    @property
    def close_code(self) -> int | None:
        """The code of the first close frame sent or received; 1006 for a lost link."""
        return self.core.close_code

    @property
    def close_reason(self) -> str:
        """The reason that came with :attr:`close_code`."""
        return self.core.close_reason

    @property
    def closed(self) -> bool:
        """Whether the connection is over (either side closed it or it broke)."""
        return self.core.closed

    async def send_eof(self) -> None:
        """WebSocket has no half-close: this closes the connection (code 1000)."""
        await self.aclose()

    @abstractmethod
    async def send_many(self, items: list[str]) -> None:
        """Send several text messages with one write."""

    @abstractmethod
    def write_nowait(self, items: list[str]) -> bool:
        """Write ``items`` now without waiting, or return False (use :meth:`send_many`)."""

    @property
    @abstractmethod
    def pending_bytes(self) -> int:
        """Bytes :meth:`write_nowait` accepted that wait for :meth:`flush`."""

    @property
    @abstractmethod
    def outbound_bytes(self) -> int:
        """Bytes written for the peer that it has not taken yet."""

    @abstractmethod
    async def flush(self) -> None:
        """Write what :meth:`write_nowait` left; return once below the high-water mark."""

    @abstractmethod
    def ping_nowait(self) -> bool:
        """Send a keepalive ping without waiting; True when :meth:`flush` must run for it to
        leave."""

    @abstractmethod
    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``: send a close frame, wait (bounded by the close timeout) for
        the peer's, then close the link. Idempotent."""


def open_websocket(
    stream: ByteStream,
    *,
    client: bool,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    initial_data: bytes = b"",
    close_timeout: float = 2.0,
    max_outbound_bytes: int | None = None,
) -> WebSocketConnection:
    """The WebSocket connection over ``stream`` once its opening handshake is done.

    ``initial_data`` holds bytes read after the handshake. A stream opened by
    :mod:`kitecore.http.asyncio_driver` becomes an
    :class:`~kitecore.http.asyncio_driver.AsyncioWebSocket` on the same transport; any
    other an :class:`~kitecore.http.anyio_driver.AnyioWebSocket`.
    """
    from kitecore.http.anyio_driver import AnyioWebSocket
    from kitecore.http.asyncio_driver import AsyncioByteStream

    core = WebSocketCore(
        client=client, max_message_size=max_message_size, max_outbound_bytes=max_outbound_bytes
    )
    if isinstance(stream, AsyncioByteStream):
        return stream.upgrade(core, initial_data, close_timeout)
    return AnyioWebSocket(stream, core, initial_data=initial_data, close_timeout=close_timeout)
