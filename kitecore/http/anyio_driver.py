"""The portable WebSocket driver: a :class:`WebSocketCore` over any anyio byte stream.

Works on every anyio backend (asyncio, trio) and over TLS or any other
:class:`anyio.abc.ByteStream`, through its public API only. One read of up to 64 KiB is parsed
completely, so successive :meth:`~AnyioWebSocket.receive` calls return buffered messages
without touching the socket; a send builds every frame first and writes them with one call.

Flow control: bytes :meth:`~AnyioWebSocket.write_nowait` accepts are kept here (anyio has no
non-blocking send) and written by the next send or :meth:`~AnyioWebSocket.flush`; on the
accepting side nothing more is read from the peer while more than
:data:`~kitecore.http.wscore.WRITE_HIGH_WATER` bytes wait for it, and ``max_outbound_bytes``
caps them (close code 1008).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from anyio.abc import ByteStream, SocketAttribute

from kitecore.http.websocket import WebSocketConnection
from kitecore.http.wscore import WRITE_HIGH_WATER, WebSocketCore

__all__ = ["AnyioWebSocket"]

logger = logging.getLogger(__name__)

_READ_SIZE = 65536
_PEER_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, OSError)
_monotonic = time.monotonic


class AnyioWebSocket(WebSocketConnection):
    """A :class:`~kitecore.http.websocket.WebSocketConnection` driven through ``stream``.

    ``core`` holds the protocol state, ``initial_data`` the bytes that came after the
    opening handshake. :meth:`write_nowait` never writes by itself (anyio's send always
    waits): it queues, and :attr:`pending_bytes` tells the caller to :meth:`flush`.
    """

    def __init__(
        self,
        stream: ByteStream,
        core: WebSocketCore,
        *,
        initial_data: bytes = b"",
        close_timeout: float = 2.0,
    ) -> None:
        self.core = core
        self._stream = stream
        self._close_timeout = close_timeout
        self._initial = initial_data
        self.last_received = _monotonic()
        self._send_lock = anyio.Lock(fast_acquire=True)
        self._stream_closed = anyio.Event()
        self._receiving = False
        self._queued: list[bytes] = []  # accepted by write_nowait, not yet written
        self._queued_size = 0
        self._writing = 0  # bytes being handed to the stream right now

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The byte stream's attributes (remote address, socket, TLS information)."""
        return self._stream.extra_attributes

    # --- receiving ---------------------------------------------------------------------------

    async def receive(self) -> str:
        """Return the next whole text message (see :class:`WebSocketConnection`)."""
        messages = self.core.messages
        if messages:
            return messages.popleft()
        # the wait in this coroutine, not one of its own: an idle connection waits here, and
        # a coroutine more for each of them costs some 230 bytes
        core = self.core
        while True:
            if messages:
                return messages.popleft()
            core.check_receivable()
            if self._receiving:
                raise anyio.BusyResourceError("receiving from")
            if self._initial:
                data, self._initial = self._initial, b""
            else:
                if not core.mask and self._queued_size + self._writing > WRITE_HIGH_WATER:
                    # the peer does not take what we send: read nothing more until it does
                    await self.flush()
                    continue
                self._receiving = True
                try:
                    data = await self._stream.receive(_READ_SIZE)
                    self.last_received = _monotonic()
                except anyio.ClosedResourceError:
                    if core.local_closed:
                        raise
                    await self._lost()
                    continue
                except _PEER_GONE:
                    await self._lost()
                    continue
                finally:
                    self._receiving = False
            answer = core.receive_data(data)
            if answer:
                await self._send_control(answer)
            if core.close_received:
                await self._close_stream()

    async def _lost(self) -> None:
        self.core.connection_lost()
        await self._close_stream()

    async def _send_control(self, frame: bytes) -> None:
        """Write a pong or close frame, best effort and bounded by the close timeout."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._close_timeout):
            try:
                async with self._send_lock:
                    await self._write(frame)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                pass

    # --- sending -----------------------------------------------------------------------------

    async def send(self, item: str) -> None:
        """Send one text message (safe to call from many tasks at once)."""
        frame = self.core.encode_message(item)
        async with self._send_lock:
            if not self.core.open:
                raise self.core.closed_error()
            await self._write(frame)

    async def send_many(self, items: list[str]) -> None:
        """Send several text messages with a single write."""
        data = self.core.encode_messages(items)
        async with self._send_lock:
            if not self.core.open:
                raise self.core.closed_error()
            await self._write(data)

    def write_nowait(self, items: list[str]) -> bool:
        """Queue ``items`` for the next write; always True (then :attr:`pending_bytes` is
        non-zero: call :meth:`flush`). A closed connection raises as :meth:`send` does, and
        so does one closed because over ``max_outbound_bytes`` would wait for the peer."""
        self._queue(self.core.encode_messages(items))
        return True

    def _queue(self, data: bytes) -> None:
        core = self.core
        queued = self._queued_size + self._writing
        if core.outbound_overflow(queued, len(data)):
            self._overflow(queued + len(data))
        self._queued.append(data)
        self._queued_size += len(data)

    def _overflow(self, size: int) -> None:
        """Drop what waits for the peer, end the link (a shutdown wakes whoever reads or
        writes) and raise BrokenResourceError."""
        self.core.fail_outbound(size)  # the close frame would only queue behind the rest
        self._queued.clear()
        self._queued_size = 0
        sock = self._stream.extra(SocketAttribute.raw_socket, None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise anyio.BrokenResourceError(
            f"websocket closed with {self.core.close_code}: {self.core.close_reason}"
        )

    def ping_nowait(self) -> bool:
        """Queue a keepalive ping; True when it was queued (:meth:`flush` sends it)."""
        frame = self.core.ping()
        if not frame:
            return False
        self._queued.append(frame)
        self._queued_size += len(frame)
        return True

    @property
    def pending_bytes(self) -> int:
        """Bytes :meth:`write_nowait` queued for :meth:`flush`."""
        return self._queued_size

    @property
    def outbound_bytes(self) -> int:
        """Bytes written for the peer that it has not taken yet."""
        return self._queued_size + self._writing

    async def flush(self) -> None:
        """Write what :meth:`write_nowait` queued."""
        async with self._send_lock:
            if self._queued:
                await self._write(b"")

    async def _write(self, data: bytes) -> None:
        """Write (queued bytes first) with the send lock held; a dead link becomes
        BrokenResourceError. Shielded once started, so no frame is ever cut in half."""
        if self._stream_closed.is_set():
            raise self.core.closed_error()
        if self._queued:
            data = b"".join((*self._queued, data))
            self._queued.clear()
            self._queued_size = 0
        self._writing = len(data)
        try:
            await self._stream.send(data)
        except anyio.ClosedResourceError:
            if self.core.local_closed:
                raise
            raise self.core.closed_error() from None
        except (anyio.BrokenResourceError, OSError) as exc:
            self.core.connection_lost()
            raise anyio.BrokenResourceError(f"websocket connection lost: {exc}") from exc
        finally:
            self._writing = 0

    # --- closing -----------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection with ``code``: send a close frame, wait (bounded by the close
        timeout) for the peer's answer, then close the byte stream. Idempotent."""
        core = self.core
        if core.local_closed:
            return
        core.local_closed = True
        core.messages.clear()
        with anyio.CancelScope(shield=True):
            if not core.close_received and not core.close_sent:
                await self._send_control(core.close(code, reason))
                with anyio.move_on_after(self._close_timeout):
                    if self._receiving:
                        # another task is reading: it will see the peer's close frame
                        await self._stream_closed.wait()
                    else:
                        await self._drain_until_close()
            await self._close_stream()

    async def _drain_until_close(self) -> None:
        """After our close frame: discard what comes until the peer's close frame or EOF."""
        core = self.core
        data, self._initial = self._initial, b""
        while not core.close_received:
            if data:
                core.receive_data(data)
                data = b""
                continue
            try:
                data = await self._stream.receive(_READ_SIZE)
            except (*_PEER_GONE, anyio.ClosedResourceError):
                core.connection_lost()
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
