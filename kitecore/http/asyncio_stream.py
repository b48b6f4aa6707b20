"""The WebSocket data phase on a native asyncio Protocol (asyncio backend, plain TCP only).

Why: anyio's asyncio ``SocketStream.receive`` resumes reading on the transport before it
waits and pauses it again afterwards, which is two ``epoll_ctl`` system calls per wait, and it
yields a whole loop iteration even when data is already buffered. On the RPC hot path (one
request, one reply) that is most of the I/O cost: profiling put kite at about 105/110 µs of
CPU per call (server/client) against about 85/92 µs for the ``websockets`` library, whose
Protocol stays registered for reading. Here, once the HTTP handshake is done, the connection
takes over anyio's transport with ``transport.set_protocol``: the socket stays registered for
reading, ``data_received`` feeds the sans-IO :class:`~kitecore.http.frames.FrameDecoder`
directly, the single receiver is woken through a loop future only when it is waiting, and
writes go to ``transport.write`` (which writes at once when the kernel has room).

Taking over the transport (rather than a second transport on an ``os.dup`` of the socket)
keeps one descriptor, closed once, and no read can race between two transports; bytes anyio
had already read ahead of the handshake are moved over first. It needs anyio's private
``_transport`` / ``_protocol`` attributes, so :func:`websocket_connection` checks their
shape and falls back to the portable :class:`~kitecore.http.websocket.WebSocketConnection`
when they differ, and always on trio and for TLS streams.

Flow control: reading pauses while more than ``_PAUSE_MESSAGES`` messages (or
``_PAUSE_BYTES`` bytes of them) wait to be received, and resumes once they are all taken;
senders wait while the transport buffers more than ``WRITE_HIGH_WATER`` bytes, and on the
accepting side reading pauses too until the peer takes them (a peer that does not read cannot
make us queue replies without end). ``write_nowait`` (what the dnode connection uses, also
for callbacks it initiates) always hands its bytes to the transport, counted against
``max_outbound_bytes``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Any

import anyio
from anyio.abc import ByteStream

from kitecore.http.errors import WebSocketProtocolError
from kitecore.http.frames import (
    OP_PING,
    OP_PONG,
    Close,
    ControlEvent,
    Ping,
    ProtocolError,
    encode_close,
    encode_frame,
    encode_text,
)
from kitecore.http.websocket import (
    DEFAULT_MAX_MESSAGE_SIZE,
    OUTBOUND_LIMIT_CLOSE,
    WRITE_HIGH_WATER,
    WebSocketConnection,
    _monotonic,
)

try:  # the stream class whose transport can be taken over (anyio internals, checked)
    from anyio._backends._asyncio import SocketStream as _AsyncioSocketStream
except ImportError:  # pragma: no cover - a future anyio without it: portable path only
    _AsyncioSocketStream = None  # type: ignore[assignment,misc]

__all__ = ["AsyncioWebSocketConnection", "closes_at_once", "websocket_connection"]

logger = logging.getLogger(__name__)

#: Unread messages past which the socket is no longer read (until they are all received).
_PAUSE_MESSAGES = 256
#: Bytes read while messages were waiting past which the socket is no longer read.
_PAUSE_BYTES = 1 << 20


def websocket_connection(
    stream: ByteStream,
    *,
    client: bool,
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
    initial_data: bytes = b"",
    close_timeout: float = 2.0,
    max_outbound_bytes: int | None = None,
) -> WebSocketConnection:
    """The fastest :class:`WebSocketConnection` for ``stream`` after an opening handshake.

    An anyio asyncio TCP stream (no TLS) gets an :class:`AsyncioWebSocketConnection`; any
    other stream (trio, TLS, a test double) the portable implementation. The arguments are
    those of :class:`WebSocketConnection`.
    """
    transport = _adoptable_transport(stream)
    if transport is None:
        return WebSocketConnection(
            stream,
            client=client,
            max_message_size=max_message_size,
            initial_data=initial_data,
            close_timeout=close_timeout,
            max_outbound_bytes=max_outbound_bytes,
        )
    read_ahead: deque[bytes] = stream._protocol.read_queue  # type: ignore[attr-defined]
    if read_ahead:
        initial_data = b"".join((initial_data, *read_ahead))
        read_ahead.clear()
    ws = AsyncioWebSocketConnection(
        stream,
        transport,
        client=client,
        max_message_size=max_message_size,
        initial_data=initial_data,
        close_timeout=close_timeout,
        max_outbound_bytes=max_outbound_bytes,
    )
    # anyio's protocol (a read queue and two events: about 2.5 KB per connection) is out of
    # use now: the transport calls ws, and the stream is only closed through its transport
    stream._protocol = None  # type: ignore[attr-defined]
    return ws


def closes_at_once(stream: ByteStream) -> bool:
    """Whether ``stream.aclose()`` closes the socket before its first checkpoint.

    True for anyio's asyncio TCP stream (its ``aclose`` aborts the transport, then yields
    once), so a caller needs no shield around it to be sure the socket gets closed.
    """
    return _AsyncioSocketStream is not None and type(stream) is _AsyncioSocketStream


def _adoptable_transport(stream: ByteStream) -> Any:
    """The asyncio transport under ``stream`` if it can be taken over, else None."""
    if _AsyncioSocketStream is None or type(stream) is not _AsyncioSocketStream:
        return None
    transport = getattr(stream, "_transport", None)
    protocol = getattr(stream, "_protocol", None)
    if (
        transport is None
        or not isinstance(getattr(protocol, "read_queue", None), deque)
        or getattr(protocol, "exception", None) is not None
        or getattr(protocol, "is_at_eof", True)
        or transport.is_closing()
        or transport.get_write_buffer_size()
        or transport.get_extra_info("sslcontext") is not None
    ):
        return None
    return transport


class AsyncioWebSocketConnection(WebSocketConnection, asyncio.Protocol):
    """A :class:`WebSocketConnection` whose transport calls it back (an asyncio Protocol).

    Same API and semantics as the portable class, plus: :meth:`write_nowait` always writes
    (the transport buffers what the kernel does not take, up to ``max_outbound_bytes``), so
    :attr:`pending_bytes` is always 0. Create it with
    :func:`websocket_connection`, inside the event loop.
    """

    #: :meth:`aclose` cannot be interrupted by cancellation (it shields every wait itself),
    #: so callers need no shield of their own around it.
    aclose_shielded = True

    def __init__(
        self,
        stream: ByteStream,
        transport: Any,
        *,
        client: bool,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        initial_data: bytes = b"",
        close_timeout: float = 2.0,
        max_outbound_bytes: int | None = None,
    ) -> None:
        # Not super().__init__: that sets up the anyio-stream I/O this class replaces.
        self._init_state(stream, client, max_message_size, close_timeout, max_outbound_bytes)
        self._loop = asyncio.get_running_loop()
        self._transport = transport
        self._receiver: asyncio.Future[None] | None = None  # the waiting receive(), if any
        self._state_waiter: asyncio.Future[None] | None = None  # aclose() waiting
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._error: WebSocketProtocolError | None = None  # raised once by receive()
        self._write_paused = False
        self._read_paused = False  # too many received messages wait to be taken
        self._reading = False  # whether the transport reads (anyio left it paused)
        self._pong_due: bytes | None = None  # the latest ping's payload, while writes wait
        self._lost = False  # connection_lost was called
        self._read_since_empty = 0  # bytes read while messages were waiting
        transport.set_protocol(self)
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if initial_data:
            self.data_received(initial_data)
        # whatever state anyio left the transport in, the first update must act
        self._reading = self._read_paused
        self._update_reading()

    # --- asyncio.Protocol callbacks ----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Decode ``data``; wake the receiver when messages (or the end) arrived."""
        self.last_received = _monotonic()
        messages = self._messages
        if not messages:
            self._read_since_empty = 0
        try:
            controls = self._decoder.feed(data)
        except ProtocolError as exc:
            self._protocol_error(exc)
            return
        if controls:
            self._handle_controls(controls)
        if self._local_closed:
            messages.clear()  # nobody receives after aclose()
            return
        if messages:
            self._read_since_empty += len(data)
            if not self._read_paused and (
                len(messages) > _PAUSE_MESSAGES or self._read_since_empty > _PAUSE_BYTES
            ):
                self._read_paused = True
                self._update_reading()
            self._wake_receiver()

    def eof_received(self) -> bool:
        """The peer closed its side: the connection is over (the transport closes itself)."""
        self._peer_gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport closed: wake everyone waiting."""
        self._lost = True
        # asyncio's socket transport keeps a bound method of itself (its read callback): a
        # reference cycle that would hold it, its socket and much of this connection's
        # memory until a full garbage collection. It reads no more: break the cycle.
        if hasattr(self._transport, "_read_ready_cb"):
            self._transport._read_ready_cb = None
        self._peer_gone()
        drain_waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    def pause_writing(self) -> None:
        """The transport buffers more than the high-water mark: senders wait (and on the
        accepting side, nothing more is read from the peer)."""
        self._write_paused = True
        if not self._mask:
            self._update_reading()

    def resume_writing(self) -> None:
        """The transport drained below the low-water mark: senders go on."""
        self._write_paused = False
        pong, self._pong_due = self._pong_due, None
        if pong is not None and not self._close_sent and not self._lost:
            self._transport.write(encode_frame(OP_PONG, pong, mask=self._mask))
        if not self._mask:
            self._update_reading()
        drain_waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    # --- receiving ---------------------------------------------------------------------------

    async def receive(self) -> str:
        """Return the next whole text message (see :meth:`WebSocketConnection.receive`).

        Buffered messages are returned without yielding to the event loop. A cancelled
        receive loses nothing: messages are only ever taken from the buffer by a receive
        that returns them.
        """
        messages = self._messages
        if messages:
            if self._read_paused and len(messages) == 1:
                self._resume_reading()
            return messages.popleft()
        return await self._wait_message()

    async def _wait_message(self) -> str:
        messages = self._messages
        while True:
            if messages:
                return messages.popleft()
            if self._local_closed:
                raise anyio.ClosedResourceError
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if self._remote_closed:
                raise anyio.EndOfStream
            if self._receiver is not None:
                raise anyio.BusyResourceError("receiving from")
            if self._read_paused:
                self._resume_reading()
            self._receiver = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._receiver = None

    def _resume_reading(self) -> None:
        self._read_paused = False
        self._update_reading()

    def _update_reading(self) -> None:
        """Pause or resume the transport's reading to match the two reasons to pause."""
        reading = not (self._read_paused or (self._write_paused and not self._mask))
        if reading != self._reading and not self._lost:
            self._reading = reading
            if reading:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()

    def _wake_receiver(self) -> None:
        waiter = self._receiver
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_closer(self) -> None:
        waiter = self._state_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _handle_controls(self, controls: list[ControlEvent]) -> None:
        for event in controls:
            if isinstance(event, Ping):
                if self._write_paused:
                    # the peer does not read: answer only its latest ping once it does
                    self._pong_due = event.payload
                elif not self._close_sent and not self._lost:
                    self._transport.write(encode_frame(OP_PONG, event.payload, mask=self._mask))
            elif isinstance(event, Close):
                self._remote_closed = True
                if self.close_code is None:
                    self.close_code, self.close_reason = event.code, event.reason
                # Echo the peer's code (RFC 6455 section 5.5.1), then end the connection.
                self._send_close_now(event.code, "")
                self._transport.close()
                self._wake_receiver()
                self._wake_closer()
                return

    def _protocol_error(self, exc: ProtocolError) -> None:
        """The peer broke the protocol: close with the matching code, tell the receiver."""
        logger.debug("websocket protocol error, closing with %d: %s", exc.code, exc.reason)
        self._remote_closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = exc.code, exc.reason
        if not self._local_closed:
            self._error = WebSocketProtocolError(exc.code, exc.reason)
        self._send_close_now(exc.code, exc.reason)
        self._transport.close()
        self._wake_receiver()
        self._wake_closer()

    def _peer_gone(self) -> None:
        """EOF or a lost transport, with or without a close handshake before."""
        if not self._remote_closed:
            self._remote_closed = True
            if self.close_code is None:
                self.close_code, self.close_reason = 1006, "connection lost"
        self._wake_receiver()
        self._wake_closer()

    # --- sending -----------------------------------------------------------------------------

    async def send(self, item: str) -> None:
        """Send one text message (safe to call from many tasks at once)."""
        frame = encode_text(item, mask=self._mask)
        if self._write_paused:
            await self._drain()
        self._write(frame)

    async def send_many(self, items: list[str]) -> None:
        """Send several text messages with a single write."""
        mask = self._mask
        data = b"".join([encode_text(item, mask=mask) for item in items])
        if self._write_paused:
            await self._drain()
        self._write(data)

    def write_nowait(self, items: list[str]) -> bool:
        """Write ``items`` now (the transport buffers what the kernel does not take); always
        True. A dead connection raises :class:`anyio.BrokenResourceError`
        (ClosedResourceError after aclose), as does one closed because over
        ``max_outbound_bytes`` would be queued."""
        mask = self._mask
        if len(items) == 1:
            self._write(encode_text(items[0], mask=mask))
        else:
            self._write(b"".join([encode_text(item, mask=mask) for item in items]))
        return True

    def write_buffered(self, items: list[str]) -> None:
        """Hand ``items`` to the transport now even over its high-water mark (it buffers them;
        :meth:`send` callers wait for the drain). For callers that cannot wait, such as a loop
        callback. A dead connection raises as :meth:`write_nowait` does."""
        mask = self._mask
        self._write(b"".join([encode_text(item, mask=mask) for item in items]))

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop this connection runs on."""
        return self._loop

    @property
    def pending_bytes(self) -> int:
        """Always 0: the transport keeps what the kernel did not take."""
        return 0

    @property
    def outbound_bytes(self) -> int:
        """Bytes written for the peer that it has not taken yet (the transport's buffer)."""
        return int(self._transport.get_write_buffer_size())

    async def flush(self) -> None:
        """Wait until the transport is below its high-water mark."""
        if self._write_paused:
            await self._drain()

    def _write(self, data: bytes) -> None:
        if self._close_sent or self._remote_closed or self._local_closed:
            raise self._closed_error()
        if self._write_paused and self._max_outbound is not None:
            queued = self._transport.get_write_buffer_size()
            if queued + len(data) > self._max_outbound:
                self._outbound_overflow(queued + len(data))
        self._transport.write(data)

    def _outbound_overflow(self, size: int) -> None:
        """More than ``max_outbound_bytes`` would wait for a peer that does not read: close
        with :data:`OUTBOUND_LIMIT_CLOSE` (the frame leaves if the peer ever reads; the
        transport is aborted after the close timeout) and raise BrokenResourceError."""
        code, reason = OUTBOUND_LIMIT_CLOSE
        logger.warning(
            "closing websocket with %d: %d bytes queued for a peer that does not read (limit %d)",
            code,
            size,
            self._max_outbound,
        )
        self._protocol_error(ProtocolError(code, reason))
        self._loop.call_later(self._close_timeout, self._abort)
        raise anyio.BrokenResourceError(f"websocket closed with {code}: {reason}")

    def _abort(self) -> None:
        if not self._lost:
            self._transport.abort()

    def ping_nowait(self) -> bool:
        """Send a ping (a keepalive) now; skipped while the peer does not read what we
        send. Always False (nothing left for :meth:`flush`)."""
        if not (self._write_paused or self._close_sent or self._lost or self.closed):
            self._transport.write(encode_frame(OP_PING, b"", mask=self._mask))
        return False

    async def _drain(self) -> None:
        while self._write_paused and not self._lost:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    def _send_close_now(self, code: int, reason: str) -> None:
        if not self._close_sent and not self._lost:
            self._close_sent = True
            self._transport.write(encode_close(code, reason, mask=self._mask))

    # --- closing -----------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``: send a close frame, wait (bounded by the close timeout) for
        the peer's answer, then close the transport once what it buffers is sent. Idempotent;
        a waiting :meth:`receive` raises :class:`anyio.ClosedResourceError`."""
        if self._local_closed:
            return
        self._local_closed = True
        self._messages.clear()
        self._wake_receiver()
        transport = self._transport
        if not self._remote_closed and not self._close_sent:
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
            self._send_close_now(code, reason)
        else:
            # No close reply to wait for (the common case on the side that did not close
            # first: the peer's close frame was answered already). Unless the transport still
            # buffers data to send, there is nothing to wait for at all: no cancel scope.
            if not self._lost:
                transport.close()
            if self._lost or not transport.get_write_buffer_size():
                return
        with anyio.CancelScope(shield=True, deadline=self._loop.time() + self._close_timeout):
            while not self._remote_closed:
                await self._state_change()
            transport.close()
            # close() sends what it buffers first, then calls connection_lost: wait for that
            # (anyio's aclose of the stream, which may follow, would discard the buffer).
            if transport.get_write_buffer_size():
                while not self._lost:
                    await self._state_change()
        if not self._lost:
            transport.close()  # (again, if the timeout came before)
            if transport.get_write_buffer_size():
                transport.abort()  # the peer took nothing for the whole close timeout

    async def _state_change(self) -> None:
        """Wait until the close handshake ends or the transport is lost."""
        self._state_waiter = waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._state_waiter = None
