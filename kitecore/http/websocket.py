"""A WebSocket connection in its data phase, as an anyio object stream of message texts.

The opening handshake is done elsewhere (:mod:`kitecore.http.server` for accepted connections,
:mod:`kitecore.http.client` for dialled ones); this class takes the open byte stream and the
bytes that followed the handshake, and speaks frames with :mod:`kitecore.http.frames`.

Performance notes (this is the hot path of every RPC): one socket read of up to 64 KiB is parsed
completely and every message in it is buffered, so successive :meth:`receive` calls return
without touching the socket or yielding; a send builds the whole frame and writes it with one
call; :meth:`send_many` writes several messages with one call.

This class works on any anyio byte stream (trio, TLS). On asyncio, a plain TCP connection gets
the faster :class:`~kitecore.http.asyncio_stream.AsyncioWebSocketConnection` subclass instead,
which drives the socket with an asyncio Protocol; :func:`kitecore.http.asyncio_stream.
websocket_connection` picks the implementation after a handshake.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
from anyio.abc import ByteStream, ObjectStream, SocketAttribute

from kitecore.http.errors import WebSocketProtocolError
from kitecore.http.frames import (
    OP_PING,
    OP_PONG,
    Close,
    ControlEvent,
    FrameDecoder,
    Ping,
    ProtocolError,
    encode_close,
    encode_frame,
    encode_text,
)

__all__ = ["DEFAULT_MAX_MESSAGE_SIZE", "WebSocketConnection"]

logger = logging.getLogger(__name__)

#: The default limit on one received message (16 MiB).
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024
_READ_SIZE = 65536
#: How long the rest of a partly written frame may take to leave before the link counts as dead.
_DRAIN_TIMEOUT = 30.0
#: Writing to a socket's descriptor with os.write works on POSIX systems only.
_DIRECT_WRITES = os.name == "posix"
_PEER_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, OSError)
#: Bytes queued for the peer past which an accepting (server) side stops reading from it.
WRITE_HIGH_WATER = 64 * 1024
#: The close code and reason of a connection closed because its peer does not read.
OUTBOUND_LIMIT_CLOSE = (1008, "outbound buffer limit: peer does not read")
_monotonic = time.monotonic


class WebSocketConnection(ObjectStream[str]):
    """One open WebSocket connection carrying text messages.

    ``client`` selects the role (clients mask their frames). ``initial_data`` holds bytes that
    arrived together with the handshake. :meth:`receive` returns one whole text message and
    must be called by one task at a time; :meth:`send` may be called from many tasks at once.

    ``close_code`` / ``close_reason`` say why the connection ended: the code of the first close
    frame sent or received, or 1006 when the peer vanished without one.

    Flow control: bytes the kernel does not take at once are queued here and counted
    (:attr:`pending_bytes`). On the accepting side (``client=False``) nothing more is read from
    the peer while over :data:`WRITE_HIGH_WATER` bytes wait for it, and ``max_outbound_bytes``
    (None: no limit) caps them: a send that would queue more closes the connection with
    :data:`OUTBOUND_LIMIT_CLOSE` and raises :class:`anyio.BrokenResourceError`. Pings are
    answered with at most one queued pong (the latest, as RFC 6455 section 5.5.3 allows).
    ``last_received`` is the :func:`time.monotonic` time bytes last came from the peer (what an
    idle timeout looks at).
    """

    def __init__(
        self,
        stream: ByteStream,
        *,
        client: bool,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        initial_data: bytes = b"",
        close_timeout: float = 2.0,
        max_outbound_bytes: int | None = None,
    ) -> None:
        self._init_state(stream, client, max_message_size, close_timeout, max_outbound_bytes)
        # Only a plain socket stream may be written to directly (never a TLS stream).
        self._raw_socket: Any = (
            stream.extra(SocketAttribute.raw_socket, None)
            if _DIRECT_WRITES and isinstance(stream, anyio.abc.SocketStream)
            else None
        )
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._stream_closed = anyio.Event()
        self._initial = initial_data
        self._receiving = False
        # bytes write_nowait could not write at once, oldest first; sent first by _write
        self._remainder: list[bytes] = []
        self._remainder_size = 0
        self._writing = 0  # bytes _write is handing to the stream right now

    def _init_state(
        self,
        stream: ByteStream,
        client: bool,
        max_message_size: int,
        close_timeout: float,
        max_outbound_bytes: int | None = None,
    ) -> None:
        """The protocol state every implementation shares (subclasses with their own I/O call
        this instead of ``__init__``)."""
        self._stream = stream
        self._mask = client
        self._max_outbound = max_outbound_bytes
        self.last_received = _monotonic()
        self._decoder = FrameDecoder(expect_masked=not client, max_message_size=max_message_size)
        self._messages = self._decoder.messages
        self._close_timeout = close_timeout
        self._local_closed = False  # aclose() was called
        self._remote_closed = False  # the peer's close frame, EOF or a fatal error was seen
        self._close_sent = False
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The underlying byte stream's attributes (remote address, socket, TLS info)."""
        return self._stream.extra_attributes

    @property
    def closed(self) -> bool:
        """Whether the connection is over (either side closed it or it broke)."""
        return self._local_closed or self._remote_closed

    # --- receiving ---------------------------------------------------------------------------

    async def receive(self) -> str:
        """Return the next whole text message.

        Raises :class:`anyio.EndOfStream` once the peer has closed (or vanished) and every
        message it sent before has been returned, :class:`anyio.ClosedResourceError` after a
        local :meth:`aclose`, and :class:`~kitecore.http.errors.WebSocketProtocolError` when
        the peer broke the protocol (the connection is then closed with the matching code).
        """
        if self._messages:
            return self._messages.popleft()
        return await self._receive_more()

    async def _receive_more(self) -> str:
        messages = self._messages
        while True:
            if messages:
                return messages.popleft()
            if self._local_closed:
                raise anyio.ClosedResourceError
            if self._remote_closed:
                raise anyio.EndOfStream
            if self._receiving:
                raise anyio.BusyResourceError("receiving from")
            if self._initial:
                data, self._initial = self._initial, b""
            else:
                if not self._mask and self._remainder_size + self._writing > WRITE_HIGH_WATER:
                    # the peer does not take what we send: read nothing more until it does
                    await self.flush()
                    continue
                self._receiving = True
                try:
                    data = await self._stream.receive(_READ_SIZE)
                    self.last_received = _monotonic()
                except anyio.ClosedResourceError:
                    if self._local_closed:
                        raise
                    await self._peer_vanished()
                    continue
                except _PEER_GONE:
                    await self._peer_vanished()
                    continue
                finally:
                    self._receiving = False
            try:
                controls = self._decoder.feed(data)
            except ProtocolError as exc:
                await self._fail(exc.code, exc.reason)
                raise WebSocketProtocolError(exc.code, exc.reason) from None
            if controls:
                await self._handle_controls(controls)

    async def _handle_controls(self, controls: list[ControlEvent]) -> None:
        for event in controls:
            if isinstance(event, Ping):
                if not self._close_sent:
                    try:
                        await self._send_frame(
                            encode_frame(OP_PONG, event.payload, mask=self._mask)
                        )
                    except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                        return
            elif isinstance(event, Close):
                await self._on_close_frame(event)
                return

    async def _on_close_frame(self, event: Close) -> None:
        self._remote_closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = event.code, event.reason
        if not self._close_sent:
            # Echo the peer's code, as RFC 6455 section 5.5.1 suggests.
            await self._send_close(event.code, "")
        await self._close_stream()

    async def _peer_vanished(self) -> None:
        """The byte stream ended or broke without a close handshake."""
        self._remote_closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = 1006, "connection lost"
        await self._close_stream()

    async def _fail(self, code: int, reason: str) -> None:
        """Close the connection because the peer broke the protocol."""
        logger.debug("websocket protocol error, closing with %d: %s", code, reason)
        self._remote_closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        await self._send_close(code, reason)
        await self._close_stream()

    # --- sending -----------------------------------------------------------------------------

    async def send(self, item: str) -> None:
        """Send one text message (safe to call from many tasks at once)."""
        frame = encode_text(item, mask=self._mask)
        async with self._send_lock:
            if self._close_sent or self._remote_closed or self._local_closed:
                raise self._closed_error()
            await self._write(frame)

    async def send_many(self, items: list[str]) -> None:
        """Send several text messages with a single socket write."""
        mask = self._mask
        data = b"".join([encode_text(item, mask=mask) for item in items])
        async with self._send_lock:
            if self._close_sent or self._remote_closed or self._local_closed:
                raise self._closed_error()
            await self._write(data)

    def write_nowait(self, items: list[str]) -> bool:
        """Write ``items`` now, without waiting, if nothing else is being sent.

        Returns False when it did nothing (another send is in progress, the socket can't be
        written directly, or the kernel took no byte): use :meth:`send_many` then. What
        the kernel did not take is kept and written first by the next send; call
        :meth:`flush` when :attr:`pending_bytes` is non-zero. A dead connection raises
        :class:`anyio.BrokenResourceError` (or ClosedResourceError after a local close).
        """
        if self._close_sent or self._remote_closed or self._local_closed:
            raise self._closed_error()
        mask = self._mask
        if len(items) == 1:
            data = encode_text(items[0], mask=mask)
        else:
            data = b"".join([encode_text(item, mask=mask) for item in items])
        self._write_or_queue(data)
        return True

    def _write_or_queue(self, data: bytes) -> bool:
        """Write ``data`` to the socket now if nothing is ahead of it, queue what is left;
        True when all of it was written."""
        raw = self._raw_socket
        if raw is None or self._remainder or self._send_lock.locked() or raw.fileno() < 0:
            self._queue(data)
            return False
        try:
            sent = os.write(raw.fileno(), data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._remote_closed = True
            if self.close_code is None:
                self.close_code, self.close_reason = 1006, "connection lost"
            raise anyio.BrokenResourceError(f"websocket connection lost: {exc}") from exc
        if sent < len(data):
            self._queue(data[sent:] if sent else data)
            return False
        return True

    def _queue(self, data: bytes) -> None:
        """Keep ``data`` for :meth:`flush`; over ``max_outbound_bytes``, close instead."""
        limit = self._max_outbound
        if limit is not None:
            queued = self._remainder_size + self._writing
            if queued > WRITE_HIGH_WATER and queued + len(data) > limit:
                self._outbound_overflow(queued + len(data))
        self._remainder.append(data)
        self._remainder_size += len(data)

    def _outbound_overflow(self, size: int) -> None:
        """The peer let more than ``max_outbound_bytes`` pile up: drop them, end the
        connection (a shutdown wakes whoever reads or writes), raise BrokenResourceError."""
        code, reason = OUTBOUND_LIMIT_CLOSE
        logger.warning(
            "closing websocket with %d: %d bytes queued for a peer that does not read (limit %d)",
            code,
            size,
            self._max_outbound,
        )
        self._remainder.clear()
        self._remainder_size = 0
        self._remote_closed = True
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        sock = self._stream.extra(SocketAttribute.raw_socket, None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise anyio.BrokenResourceError(f"websocket closed with {code}: {reason}")

    def ping_nowait(self) -> bool:
        """Send a ping (a keepalive) without waiting. True when it had to be queued behind
        other bytes: then :meth:`flush` must run for it to leave."""
        if self._close_sent or self._remote_closed or self._local_closed:
            return False
        try:
            return not self._write_or_queue(encode_frame(OP_PING, b"", mask=self._mask))
        except anyio.BrokenResourceError:
            return False

    @property
    def pending_bytes(self) -> int:
        """Bytes :meth:`write_nowait` left for :meth:`flush` to write."""
        return self._remainder_size

    @property
    def outbound_bytes(self) -> int:
        """Bytes written for the peer that it has not taken yet (here: :attr:`pending_bytes`)."""
        return self._remainder_size

    async def flush(self) -> None:
        """Write what :meth:`write_nowait` could not."""
        async with self._send_lock:
            if self._remainder:
                await self._write(b"")

    async def send_eof(self) -> None:
        """WebSocket has no half-close: this closes the connection (code 1000)."""
        await self.aclose()

    def _closed_error(self) -> Exception:
        if self._local_closed:
            return anyio.ClosedResourceError()
        return anyio.BrokenResourceError(
            f"websocket is closed ({self.close_code} {self.close_reason})".strip()
        )

    async def _send_frame(self, frame: bytes) -> None:
        async with self._send_lock:
            await self._write(frame)

    async def _write(self, data: bytes) -> None:
        """Write with the send lock held; a dead socket becomes BrokenResourceError.

        Fast path: anyio's ``send`` always yields to the event loop, which costs about a third
        of an echo round trip. Every write of this connection goes through here under the send
        lock, and anyio's ``send`` returns only once the backend has handed all its data to the
        kernel, so no bytes of ours are ever queued in the backend when we get here: writing to
        the non-blocking socket directly keeps the byte order. The descriptor is looked up right
        before the (synchronous) write, so a socket closed by the backend is never written to.
        What the kernel does not take goes through anyio's ``send``, shielded so that a
        cancellation cannot leave half a frame on the wire.
        """
        if self._stream_closed.is_set():
            raise self._closed_error()
        if self._remainder:
            data = b"".join((*self._remainder, data))
            self._remainder.clear()
            self._remainder_size = 0
        self._writing = len(data)
        try:
            await self._write_now(data)
        finally:
            self._writing = 0

    async def _write_now(self, data: bytes) -> None:
        raw = self._raw_socket
        try:
            if raw is not None and (fd := raw.fileno()) >= 0:
                try:
                    sent = os.write(fd, data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                if sent == len(data):
                    return
                if sent:
                    try:
                        with anyio.CancelScope(shield=True):
                            with anyio.fail_after(_DRAIN_TIMEOUT):
                                await self._stream.send(memoryview(data)[sent:])
                    except TimeoutError:
                        # Bytes may still sit in the backend: no more direct writes.
                        self._raw_socket = None
                        raise
                    return
            await self._stream.send(data)
        except anyio.ClosedResourceError:
            if self._local_closed:
                raise
            raise self._closed_error() from None
        except (anyio.BrokenResourceError, OSError) as exc:
            self._remote_closed = True
            if self.close_code is None:
                self.close_code, self.close_reason = 1006, "connection lost"
            raise anyio.BrokenResourceError(f"websocket connection lost: {exc}") from exc

    async def _send_close(self, code: int, reason: str) -> None:
        """Send a close frame once, best effort and bounded by the close timeout."""
        if self._close_sent:
            return
        self._close_sent = True
        frame = encode_close(code, reason, mask=self._mask)
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._close_timeout):
            try:
                await self._send_frame(frame)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass

    # --- closing -----------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code``: send a close frame, wait (bounded by the close
        timeout) for the peer's answer, then close the byte stream. Idempotent."""
        if self._local_closed:
            return
        self._local_closed = True
        with anyio.CancelScope(shield=True):
            if not self._remote_closed and not self._close_sent:
                if self.close_code is None:
                    self.close_code, self.close_reason = code, reason
                await self._send_close(code, reason)
                with anyio.move_on_after(self._close_timeout):
                    if self._receiving:
                        # Another task is reading: it will see the peer's close frame.
                        await self._stream_closed.wait()
                    else:
                        await self._drain_until_close()
            await self._close_stream()

    async def _drain_until_close(self) -> None:
        """After our close frame: discard messages until the peer's close frame or EOF."""
        data, self._initial = self._initial, b""
        while True:
            if data:
                try:
                    controls = self._decoder.feed(data)
                except ProtocolError:
                    return
                self._messages.clear()
                if any(isinstance(event, Close) for event in controls):
                    self._remote_closed = True
                    return
            try:
                data = await self._stream.receive(_READ_SIZE)
            except (*_PEER_GONE, anyio.ClosedResourceError):
                return

    async def _close_stream(self) -> None:
        if self._stream_closed.is_set():
            return
        self._stream_closed.set()
        with anyio.CancelScope(shield=True):
            try:
                await self._stream.aclose()
            except (anyio.BrokenResourceError, OSError):
                pass
