"""The asyncio driver: connections this package opens itself, as ``asyncio.Protocol`` objects.

Only public asyncio APIs: the server accepts with ``loop.sock_accept`` and hands each socket to
``loop.connect_accepted_socket`` (TLS through its ``ssl=`` argument), the client dials with
``loop.create_connection``; the protocol object is ours from the first byte.

* :class:`AsyncioByteStream` is that protocol during the HTTP phase: an
  :class:`anyio.abc.ByteStream`, so the HTTP server and client code is the same on every
  backend.
* After a WebSocket handshake, :meth:`AsyncioByteStream.upgrade` hands the transport (public
  ``transport.set_protocol``) to an :class:`AsyncioWebSocket`, which drives a sans-IO
  :class:`~kitecore.http.wscore.WebSocketCore`: ``data_received`` feeds it directly, a waiting
  receiver is woken through one loop future, and writes go to ``transport.write`` (which
  writes at once when the kernel has room). The socket stays registered for reading: no
  system call and no task switch per message beyond the socket reads and writes themselves.

Flow control: reading pauses while :meth:`WebSocketCore.inbound_backlog` says too much waits
to be received, and resumes once it is all taken; senders wait while the transport buffers
more than :data:`~kitecore.http.wscore.WRITE_HIGH_WATER` bytes, and on the accepting side
reading pauses too until the peer takes them. :meth:`AsyncioWebSocket.write_nowait` always
hands its bytes to the transport, counted against ``max_outbound_bytes``.
"""

from __future__ import annotations

import asyncio
import asyncio.tasks
import gc
import logging
import selectors
import socket
import ssl
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any, cast

import anyio
from anyio.abc import ByteStream, SocketAttribute
from anyio.streams.tls import TLSAttribute

from kitecore.http.limits import Renewal
from kitecore.http.websocket import WebSocketConnection
from kitecore.http.wscore import WRITE_HIGH_WATER, WebSocketCore

__all__ = [
    "AsyncioByteStream",
    "AsyncioWebSocket",
    "accept_socket",
    "accepts_tls",
    "compact_loop_tables",
    "connect_tcp",
    "flush_loop_free_lists",
    "renew_reader_tables",
    "running_asyncio_loop",
    "start_accepted",
]

logger = logging.getLogger(__name__)

_monotonic = time.monotonic
#: Bytes buffered during the HTTP phase past which the socket is no longer read.
_STREAM_HIGH_WATER = 256 * 1024


def running_asyncio_loop() -> asyncio.AbstractEventLoop | None:
    """The running asyncio loop, or None (another backend, such as trio)."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def accepts_tls(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether :func:`start_accepted` can do TLS on ``loop``: not on uvloop, whose
    ``connect_accepted_socket(ssl=...)`` never completes (uvloop 0.21); the server then
    takes anyio's TLS stream and the portable driver there."""
    return not _on_uvloop(loop)


def _on_uvloop(loop: asyncio.AbstractEventLoop) -> bool:
    return type(loop).__module__.startswith("uvloop")


async def accept_socket(listener: socket.socket, renewal: Renewal | None = None) -> socket.socket:
    """Accept one connection from the listening (non-blocking) ``listener``: at once when one
    waits in the backlog, else once the listener is readable. The wait for readiness, run
    through ``renewal`` when given, can be cut short and made anew: the accept itself is
    never cancelled, so no connection is lost (``loop.sock_accept`` accepts in a callback,
    and a task cancelled after that callback loses the socket)."""
    while True:
        try:
            sock, _address = listener.accept()
        except (BlockingIOError, InterruptedError):
            pass
        else:
            sock.setblocking(False)
            return sock
        readable = _readable(asyncio.get_running_loop(), listener)
        if renewal is None:
            await readable
            renewed = False
        else:
            renewed = not await renewal.wait(readable)
        # gone before the next wait is made (made while this one is kept, after a crowd it
        # would go beside this one, in the crowd's memory)
        del readable
        if renewed:
            # made anew (after a crowd): the interpreter's free lists emptied too (the wait's
            # handle context and argument tuple went there, and the next wait's would be made
            # from them, where they are, in the crowd's memory). A step later: the step that
            # ended the wait holds its exception, whose traceback holds the wait.
            await asyncio.sleep(0)
            gc.collect()


async def _readable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    """Return once ``sock`` is readable (cancellable; nothing is read)."""
    waiter: asyncio.Future[None] = loop.create_future()
    loop.add_reader(sock, _wake, waiter)
    try:
        await waiter
    finally:
        loop.remove_reader(sock)


#: Objects made to flush the event loop's free lists: more than CPython's ``_asyncio`` (255
#: future iterators) and uvloop (250 handles, 250 timer handles) keep for reuse, by as many as
#: the free room a crowd leaves in the memory pools of their size can take (measured after
#: 10,000 connections: some 5,000 blocks of a future iterator's size, a few hundred of a
#: handle's), so that the last ones made, the ones the free lists keep, are made in fresh pools.
_ITERATOR_FLUSH = 8192
_HANDLE_FLUSH = 1024


async def flush_loop_free_lists() -> None:
    """Make the event loop's free lists let go of objects freed amid a crowd of connections.

    CPython's ``_asyncio`` keeps up to 255 freed future iterators (one is made for each
    ``await`` of a future) for reuse, uvloop up to 250 handles and timer handles each: after
    a crowd has gone, they are the crowd's last objects and, scattered over its memory arenas,
    keep hundreds of them from being released (the interpreter's own free lists are emptied
    by a full garbage collection, not these). Made anew well past the free lists' size and
    let go of newest first, the fresh objects fill the free lists and the old ones are freed.
    Well past: the first fresh objects go where the crowd left room, in memory pools beside
    its free-listed objects and so in its arenas; only the last ones, the ones kept, are made
    in pools of their own (pymalloc fills pools that have room before it takes a new one)."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    held: list[object] = [future.__await__() for _ in range(_ITERATOR_FLUSH)]
    # uvloop's handles (asyncio's own are plain objects, kept in no free list)
    for _ in range(_HANDLE_FLUSH if _on_uvloop(loop) else 0):
        handle = loop.call_soon(_noop)
        handle.cancel()
        held.append(handle)
        timer = loop.call_later(3600.0, _noop)
        timer.cancel()
        held.append(timer)
    future.cancel()
    for _ in range(2):  # the loop drops the cancelled handles (it frees none: held here)
        await asyncio.sleep(0)
    while held:
        del held[-1]  # newest first


def compact_loop_tables(loop: asyncio.AbstractEventLoop) -> None:
    """Make the tables of asyncio that had an entry per connection of a crowd small again.

    A set or dict keeps the size of its peak when its entries go (after 10,000 connections:
    asyncio's set of all tasks 512 KiB, the selector's map of registered descriptors 288
    KiB); copied, it is sized for what it holds now. Only where that is safe:

    - the set of all tasks (a :class:`weakref.WeakSet` of every loop and thread, kept by
      ``asyncio.tasks``): its inner set is compacted in place, by one call of C code that
      runs no Python code (``set.intersection_update()`` with no argument copies the set and
      takes over the copy's table), so no other thread can see it half done and the object
      stays the same; skipped while an iteration over it is under way;
    - the selector's map of descriptors to keys (asyncio's own event loop; uvloop keeps
      its descriptors in libuv): used by the loop's thread only, the one running this, and
      from no iteration now (``select`` has returned): replaced by a copy.

    anyio's task states (a module-level dict of every task of every thread's loop, 288 KiB
    after 10,000 connections) are left alone: a dict cannot be compacted in place, and
    another thread's event loop could add to the old one while it is being replaced."""
    for name in ("_all_tasks", "_scheduled_tasks"):  # (3.11; 3.12 and 3.13)
        tasks = getattr(asyncio.tasks, name, None)
        if isinstance(tasks, weakref.WeakSet):
            # (attributes read, not vars(): that would make the object a dict of its own,
            # after a crowd, beside its memory)
            data = getattr(tasks, "data", None)
            if type(data) is set and not getattr(tasks, "_iterating", True):
                data.intersection_update()
    selector = getattr(loop, "_selector", None)
    # (not isinstance(None, ...) on uvloop: an ABC would cache NoneType in a new set)
    if selector is not None and isinstance(selector, selectors.BaseSelector):
        fd_to_key = getattr(selector, "_fd_to_key", None)
        if type(fd_to_key) is dict:
            selector._fd_to_key = dict(fd_to_key)  # type: ignore[attr-defined]


def renew_reader_tables(loop: asyncio.AbstractEventLoop, times: int = 64) -> None:
    """Have the event loop's tables of descriptors watched for reading reallocated now.

    A dict reallocates its table once the entries it has added (deletions do not give them
    back) fill it: uvloop's maps of reader descriptors (to their poll handles and file
    objects, not reachable from Python) get a new table every few waits of an accept, so
    after a crowd their tables are where the last one it made was put, in the crowd's memory,
    each alone keeping an arena. Registering and unregistering a descriptor of a socket pair
    of our own ``times`` times (more than the table of a map of up to some 40 descriptors
    takes) makes them anew now, sized for what they hold (and the selector's map on asyncio's
    own loop): made last in a release, they go beside what stays."""
    first, second = socket.socketpair()
    with first, second:
        for _ in range(times):
            loop.add_reader(first, _noop)
            loop.remove_reader(first)


def _noop() -> None:
    pass


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():  # (the listener may be reported readable again before it runs)
        waiter.set_result(None)


async def start_accepted(
    sock: socket.socket, ssl_context: ssl.SSLContext | None, handshake_timeout: float
) -> AsyncioByteStream:
    """Wrap an accepted socket in an :class:`AsyncioByteStream` (after the TLS handshake,
    within ``handshake_timeout``, when ``ssl_context`` is given)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.connect_accepted_socket(
        lambda: AsyncioByteStream(loop),
        sock,
        ssl=ssl_context,
        ssl_handshake_timeout=handshake_timeout if ssl_context is not None else None,
    )
    protocol.connection_made(transport)  # (uvloop may call it only after this returns)
    return protocol


async def connect_tcp(
    host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> AsyncioByteStream:
    """Dial ``host:port`` (TLS with ``ssl_context``, checked against ``host``)."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(
        lambda: AsyncioByteStream(loop),
        host,
        port,
        ssl=ssl_context,
        server_hostname=host if ssl_context is not None else None,
    )
    protocol.connection_made(transport)  # (uvloop may call it only after this returns)
    return protocol


def _buffered(transport: asyncio.WriteTransport) -> int:
    """Bytes ``transport`` buffers; 0 once asyncio's TLS transport has let go of its
    protocol (it raises AttributeError then instead of answering)."""
    try:
        return transport.get_write_buffer_size()
    except AttributeError:
        return 0


def _cancel(timer: asyncio.TimerHandle | None) -> None:
    """Cancel ``timer`` (a cancelled handle drops its callback, and so what it refers to)."""
    if timer is not None:
        timer.cancel()


def _attributes(transport: asyncio.BaseTransport) -> dict[Any, Callable[[], Any]]:
    """anyio's socket and TLS attributes of ``transport`` (what ``stream.extra`` offers)."""
    info = transport.get_extra_info
    attributes: dict[Any, Callable[[], Any]] = {
        SocketAttribute.remote_address: lambda: info("peername"),
        SocketAttribute.local_address: lambda: info("sockname"),
        SocketAttribute.family: lambda: info("socket").family,
    }
    peer = info("peername")
    if isinstance(peer, tuple):
        attributes[SocketAttribute.remote_port] = lambda: info("peername")[1]
        attributes[SocketAttribute.local_port] = lambda: info("sockname")[1]
    ssl_object: ssl.SSLObject | None = info("ssl_object")
    if ssl_object is not None:
        tls = ssl_object
        attributes.update(
            {
                TLSAttribute.ssl_object: lambda: tls,
                TLSAttribute.server_side: lambda: tls.server_side,
                TLSAttribute.peer_certificate: lambda: tls.getpeercert(False),
                TLSAttribute.peer_certificate_binary: lambda: tls.getpeercert(True),
                TLSAttribute.cipher: tls.cipher,
                TLSAttribute.shared_ciphers: tls.shared_ciphers,
                TLSAttribute.tls_version: tls.version,
                TLSAttribute.alpn_protocol: tls.selected_alpn_protocol,
                TLSAttribute.standard_compatible: lambda: False,
            }
        )
    return attributes


def _wake_all(waiters: list[asyncio.Future[None]]) -> None:
    """Resolve every waiter not resolved yet (writers waiting for the transport to drain)."""
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)


class AsyncioByteStream(ByteStream, asyncio.Protocol):
    """One connection's byte stream during its HTTP phase (an ``asyncio.Protocol``).

    Received bytes are buffered (reading pauses past 256 KiB until they are taken);
    :meth:`send` returns once the transport is below its high-water mark. ``aclose`` closes
    the transport after what it buffers is sent (aborting it if that takes longer than
    ``close_timeout``); after :meth:`upgrade`, the WebSocket owns the transport and closing
    the stream does nothing.
    """

    #: :meth:`aclose` never waits (it closes the transport at once): no cancel scope needed.
    aclose_shielded = True

    def __init__(self, loop: asyncio.AbstractEventLoop, close_timeout: float = 2.0) -> None:
        self._loop = loop
        self._close_timeout = close_timeout
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[None] | None = None
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._eof = False
        self._lost = False
        self._error: Exception | None = None
        self._closed = False
        self._upgraded = False
        self._read_paused = False
        self._write_paused = False
        self._tls = False
        self._abort_timer: asyncio.TimerHandle | None = None

    # --- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport; senders wait past :data:`WRITE_HIGH_WATER` bytes."""
        if self._transport is transport:
            return
        # (uvloop's transports do not subclass asyncio.Transport, but have its methods)
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        self._tls = transport.get_extra_info("ssl_object") is not None

    def data_received(self, data: bytes) -> None:
        """Buffer ``data`` and wake the reader."""
        self._buffer += data
        if len(self._buffer) > _STREAM_HIGH_WATER and not self._read_paused:
            self._read_paused = True
            self._transport_or_fail().pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        """The peer will send nothing more; keep the transport open for our answer (TLS
        has no half-close: there the transport closes)."""
        self._eof = True
        self._wake()
        return not self._tls

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport is closed: wake everyone waiting (and let go of the abort timer,
        so that nothing keeps this stream once its users do)."""
        self._lost = True
        self._error = exc
        self._wake()
        self._wake_drainers()
        _cancel(self._abort_timer)
        self._abort_timer = None

    def pause_writing(self) -> None:
        """The transport buffers past its high-water mark: senders wait."""
        self._write_paused = True

    def resume_writing(self) -> None:
        """The transport is below its low-water mark: senders go on."""
        self._write_paused = False
        self._wake_drainers()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        _wake_all(waiters)

    def _transport_or_fail(self) -> asyncio.Transport:
        if self._transport is None:  # pragma: no cover - the loop calls connection_made first
            raise anyio.BrokenResourceError("not connected")
        return self._transport

    # --- ByteStream ----------------------------------------------------------------------------

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """Remote and local address, family, and the TLS attributes on a TLS connection
        (made on each call: not kept for the connection's life)."""
        return _attributes(self._transport_or_fail())

    async def receive(self, max_bytes: int = 65536) -> bytes:
        """Up to ``max_bytes`` received bytes; EndOfStream at the peer's end."""
        while not self._buffer:
            if self._closed:
                raise anyio.ClosedResourceError
            if self._lost or self._eof:
                if self._error is not None:
                    raise anyio.BrokenResourceError(str(self._error)) from self._error
                raise anyio.EndOfStream
            if self._waiter is not None:
                raise anyio.BusyResourceError("reading from")
            self._waiter = waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        buffer = self._buffer
        if len(buffer) <= max_bytes:
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        if self._read_paused and len(buffer) <= _STREAM_HIGH_WATER // 4:
            self._read_paused = False
            if not self._lost:
                self._transport_or_fail().resume_reading()
        return data

    async def send(self, item: bytes) -> None:
        """Write ``item``; wait while the transport buffers past its high-water mark."""
        if self._closed:
            raise anyio.ClosedResourceError
        transport = self._transport_or_fail()
        if self._lost or transport.is_closing():
            raise anyio.BrokenResourceError("the connection is closed")
        transport.write(item)
        while self._write_paused and not self._lost:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter
        if self._lost and self._error is not None:
            raise anyio.BrokenResourceError(str(self._error)) from self._error

    async def send_eof(self) -> None:
        """Half-close: the peer reads an end of stream."""
        transport = self._transport_or_fail()
        if transport.can_write_eof() and not transport.is_closing():
            transport.write_eof()

    async def aclose(self) -> None:
        """Close the transport once it sent what it buffers (at most ``close_timeout`` later)."""
        if self._closed:
            return
        self._closed = True
        self._wake()
        if self._upgraded:
            return
        transport = self._transport
        if transport is None or self._lost:
            return
        transport.close()
        if _buffered(transport):
            self._abort_timer = self._loop.call_later(self._close_timeout, self._abort)

    def _abort(self) -> None:
        if not self._lost and self._transport is not None:
            self._transport.abort()

    # --- the WebSocket hand-over ---------------------------------------------------------------

    def upgrade(
        self, core: WebSocketCore, initial_data: bytes, close_timeout: float
    ) -> AsyncioWebSocket:
        """Hand the transport to a WebSocket on ``core`` after an opening handshake;
        ``initial_data`` are the bytes read after the handshake (those still buffered here
        follow them)."""
        transport = self._transport_or_fail()
        data = initial_data + bytes(self._buffer) if self._buffer else initial_data
        self._buffer = bytearray()
        self._upgraded = True
        ws = AsyncioWebSocket(
            self._loop,
            transport,
            core,
            close_timeout=close_timeout,
            read_paused_by_transport=self._read_paused,
            write_paused=self._write_paused,
        )
        if self._lost:
            ws.connection_lost(self._error)
            return ws
        transport.set_protocol(ws)
        if data:
            ws.data_received(data)
        if self._eof:
            ws.eof_received()
        return ws


class AsyncioWebSocket(WebSocketConnection, asyncio.Protocol):
    """A :class:`~kitecore.http.websocket.WebSocketConnection` on an asyncio transport.

    Made by :meth:`AsyncioByteStream.upgrade`, inside the event loop. :meth:`write_nowait`
    always writes (the transport buffers what the kernel does not take, up to
    ``max_outbound_bytes``), so :attr:`pending_bytes` is always 0; :meth:`call_soon` and
    :meth:`write_buffered` let a caller coalesce writes made in one loop pass.
    """

    #: :meth:`aclose` shields every wait itself: callers need no cancel scope around it.
    aclose_shielded = True

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        transport: asyncio.Transport,
        core: WebSocketCore,
        *,
        close_timeout: float = 2.0,
        read_paused_by_transport: bool = False,
        write_paused: bool = False,
    ) -> None:
        self.core = core
        self.last_received = _monotonic()
        self._loop = loop
        self._transport = transport
        self._close_timeout = close_timeout
        self._messages = core.messages
        self._receiver: asyncio.Future[None] | None = None  # the waiting receive(), if any
        # offered each message as it arrives, before the receiver (set_receive_hook)
        self._hook: Callable[[str], bool] | None = None
        self._state_waiter: asyncio.Future[None] | None = None  # aclose() waiting
        self._drain_waiters: list[asyncio.Future[None]] = []
        # frames held back while more received messages wait to be taken (their answers
        # leave together, in one system call), and whether a flush is scheduled for them
        self._held: list[bytes] = []
        self._flush_scheduled = False
        self._holding = False  # hold_writes() was called and its flush has not run yet
        self._hold_calls = self._hold_seen = 0  # hold_writes() calls: all, and when queued
        self._write_paused = write_paused
        core.writes_blocked = write_paused
        self._read_paused = False  # too many received messages wait to be taken
        self._reading = not read_paused_by_transport  # what the transport does now
        self._lost = False
        self._abort_timer: asyncio.TimerHandle | None = None
        self._update_reading()

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        """The connection's socket (and TLS) attributes (made on each call)."""
        return _attributes(self._transport)

    # --- asyncio.Protocol callbacks ------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to the core; write its answer; wake the receiver."""
        self.last_received = _monotonic()
        core = self.core
        answer = core.receive_data(data)
        if answer and not self._lost:
            self._write_through(answer)
        if core.close_received:
            if self._held:
                self._flush_held()
            self._transport.close()  # after the answer, which it still sends
            self._wake_receiver()
            self._wake_closer()
            return
        messages = core.messages
        if messages:
            hook = self._hook
            if hook is not None:  # offered oldest first; what it takes needs no receiver
                while hook(messages[0]):
                    messages.popleft()
                    if not messages:
                        if self._read_paused:
                            self._resume_reading()
                        return
            if not self._read_paused and core.inbound_backlog():
                self._read_paused = True
                self._update_reading()
            waiter = self._receiver  # (self._wake_receiver(), inlined: once per message)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def set_receive_hook(self, hook: Callable[[str], bool] | None) -> None:
        """Offer each message to ``hook`` as it arrives, in :meth:`data_received`, before it
        is queued for :meth:`receive` (see :class:`kitecore.transport.ReceiveHook`); None
        stops it."""
        self._hook = hook

    def eof_received(self) -> bool:
        """The peer closed its side: the connection is over (the transport closes itself)."""
        self._peer_gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The transport closed: wake everyone waiting (and let go of the abort timer, so
        that nothing keeps this connection once its users do)."""
        self._lost = True
        self._peer_gone()
        self._wake_drainers()
        _cancel(self._abort_timer)
        self._abort_timer = None

    def pause_writing(self) -> None:
        """The transport buffers more than the high-water mark: senders wait (and on the
        accepting side, nothing more is read from the peer)."""
        self._write_paused = True
        self.core.writes_blocked = True
        if not self.core.mask:
            self._update_reading()

    def resume_writing(self) -> None:
        """The transport drained below the low-water mark: senders go on."""
        self._write_paused = False
        pong = self.core.writes_resumed()
        if pong and not self._lost:
            self._write_through(pong)
        if not self.core.mask:
            self._update_reading()
        self._wake_drainers()

    def _peer_gone(self) -> None:
        self.core.connection_lost()
        self._wake_receiver()
        self._wake_closer()

    def _wake_receiver(self) -> None:
        waiter = self._receiver
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_closer(self) -> None:
        waiter = self._state_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_drainers(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        _wake_all(waiters)

    def _update_reading(self) -> None:
        """Pause or resume the transport's reading to match the two reasons to pause."""
        reading = not (self._read_paused or (self._write_paused and not self.core.mask))
        if reading != self._reading and not self._lost:
            self._reading = reading
            if reading:
                self._transport.resume_reading()
            else:
                self._transport.pause_reading()

    # --- receiving -----------------------------------------------------------------------------

    async def receive(self) -> str:
        """Return the next whole text message (see :class:`WebSocketConnection`).

        Buffered messages are returned without yielding to the event loop. A cancelled
        receive loses nothing: messages are only taken by a receive that returns them.
        """
        messages = self._messages
        if messages:
            if self._read_paused and len(messages) == 1:
                self._resume_reading()
            return messages.popleft()
        # the wait in this coroutine, not one of its own: an idle connection waits here, and
        # a coroutine more for each of them costs some 230 bytes
        core = self.core
        while True:
            if messages:
                return messages.popleft()
            core.check_receivable()
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

    # --- sending -------------------------------------------------------------------------------

    async def send(self, item: str) -> None:
        """Send one text message (safe to call from many tasks at once)."""
        frame = self.core.encode_message(item)
        if self._write_paused:
            await self._drain()
            if not self.core.open:
                raise self.core.closed_error()
        self._write(frame)

    async def send_many(self, items: list[str]) -> None:
        """Send several text messages with a single write."""
        data = self.core.encode_messages(items)
        if self._write_paused:
            await self._drain()
            if not self.core.open:
                raise self.core.closed_error()
        self._write(data)

    def write_nowait(self, items: list[str]) -> bool:
        """Write ``items`` now (the transport buffers what the kernel does not take); always
        True. A closed connection raises :class:`anyio.BrokenResourceError`
        (ClosedResourceError after :meth:`aclose`), as does one closed because more than
        ``max_outbound_bytes`` would wait for the peer."""
        self._write(self.core.encode_messages(items))
        return True

    def write_buffered(self, items: list[str]) -> None:
        """Hand ``items`` to the transport now even past its high-water mark (:meth:`send`
        callers wait for the drain); for callers that cannot wait, such as a loop callback.
        Raises as :meth:`write_nowait` does."""
        self._write(self.core.encode_messages(items))

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` at the end of this event-loop pass (to coalesce writes)."""
        self._loop.call_soon(callback)

    def hold_writes(self) -> None:
        """Hold back writes until the callbacks ready now have run: a flush goes to the end
        of the loop's ready queue, behind the task just woken (by the reply the caller has
        just delivered). Tasks woken after that flush was queued write in the next flush,
        one loop pass later (called again while holding, the hold lasts one more pass)."""
        self._hold_calls += 1
        if not self._holding:
            self._holding = True
            self._hold_seen = self._hold_calls
            self._loop.call_soon(self._end_hold)

    def _end_hold(self) -> None:
        self._flush_held()
        if self._hold_seen != self._hold_calls and not self._lost:
            # woken after this flush was queued: they run after it, in this pass
            self._hold_seen = self._hold_calls
            self._loop.call_soon(self._end_hold)
        else:
            self._holding = False

    #: Always 0: the transport keeps what the kernel did not take (a class attribute, not a
    #: property: it is read after every direct write).
    pending_bytes = 0

    @property
    def outbound_bytes(self) -> int:
        """Bytes written for the peer that it has not taken yet (the transport's buffer and
        the frames held back for this loop pass)."""
        held = self._held
        return _buffered(self._transport) + (sum(map(len, held)) if held else 0)

    async def flush(self) -> None:
        """Wait until the transport is below its high-water mark."""
        if self._write_paused:
            await self._drain()

    def ping_nowait(self) -> bool:
        """Send a keepalive ping now, unless the peer does not read what we send. Always
        False (nothing is left for :meth:`flush`)."""
        if not (self._write_paused or self._lost):
            frame = self.core.ping()
            if frame:
                self._write_through(frame)
        return False

    def _write(self, data: bytes) -> None:
        """Write ``data`` now, or hold it back while more received messages wait to be taken
        in this loop pass: their answers then leave with it in one system call (written when
        the last one is taken and answered, or at the latest in the next loop pass)."""
        if self._write_paused:
            queued = _buffered(self._transport) + sum(map(len, self._held))
            if self.core.outbound_overflow(queued, len(data)):
                self._overflow(queued + len(data))
        held = self._held
        if self._holding:
            held.append(data)  # written by _end_hold
        elif self._messages:
            held.append(data)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._flush_held)
        elif held:
            held.append(data)
            self._flush_held()
        else:
            self._transport.write(data)

    def _write_through(self, data: bytes) -> None:
        """Write ``data`` at once, after what is held back."""
        if self._held:
            self._held.append(data)
            self._flush_held()
        else:
            self._transport.write(data)

    def _flush_held(self) -> None:
        """Write the frames held back by :meth:`_write` (one transport write)."""
        self._flush_scheduled = False
        held = self._held
        if held:
            self._held = []
            if not self._lost:
                self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def _overflow(self, size: int) -> None:
        """Close with 1008 (the frame leaves if the peer ever reads; the transport is aborted
        after the close timeout) and raise BrokenResourceError."""
        frame = self.core.fail_outbound(size)
        self._held = []  # dropped, as the transport's buffer is
        if not self._lost:
            self._transport.write(frame)
            self._transport.close()
            self._abort_timer = self._loop.call_later(self._close_timeout, self._abort)
        self._wake_receiver()
        self._wake_closer()
        raise anyio.BrokenResourceError(
            f"websocket closed with {self.core.close_code}: {self.core.close_reason}"
        )

    def _abort(self) -> None:
        if not self._lost:
            self._transport.abort()

    async def _drain(self) -> None:
        while self._write_paused and not self._lost:
            waiter = self._loop.create_future()
            self._drain_waiters.append(waiter)
            await waiter

    # --- closing -------------------------------------------------------------------------------

    async def aclose(self, code: int = 1000, reason: str = "") -> None:
        """Close with ``code``: send a close frame, wait (bounded by the close timeout) for
        the peer's answer, then close the transport once what it buffers is sent. Idempotent;
        a waiting :meth:`receive` raises :class:`anyio.ClosedResourceError`."""
        core = self.core
        if core.local_closed:
            return
        core.local_closed = True
        core.messages.clear()
        self._wake_receiver()
        transport = self._transport
        if not core.close_received and not core.close_sent:
            frame = core.close(code, reason)
            if not self._lost:
                self._write_through(frame)
        else:
            # No close reply to wait for (the common case on the side that did not close
            # first: the peer's close frame was answered already). Unless the transport still
            # buffers data, there is nothing to wait for at all: no cancel scope.
            self._flush_held()
            if not self._lost:
                transport.close()
            if self._lost or not _buffered(transport):
                return
        with anyio.CancelScope(shield=True, deadline=anyio.current_time() + self._close_timeout):
            while not core.close_received:
                await self._state_change()
            transport.close()
            # close() sends what it buffers first, then calls connection_lost: wait for that
            if _buffered(transport):
                while not self._lost:
                    await self._state_change()
        if not self._lost:
            transport.close()  # (again, if the timeout came first)
            if _buffered(transport):
                transport.abort()  # the peer took nothing for the whole close timeout

    async def _state_change(self) -> None:
        """Wait until the close handshake ends or the transport is lost."""
        self._state_waiter = waiter = self._loop.create_future()
        try:
            await waiter
        finally:
            self._state_waiter = None
