"""One dnode session over a message stream, shared by the server and client sides.

A :class:`Connection` reads whole messages from its stream, decodes them, and
- resolves pending calls when a response callback comes back (inline, cheap),
- runs the other callbacks the peer invokes one at a time, in arrival order,
- hands method calls to a pool of worker tasks, so calls run concurrently.

The worker pool is what a task per call would be, without creating a task per call: an idle
worker is woken for new work, and a worker about to run a call wakes another one first when
more calls are waiting, so a call that blocks never holds up the ones behind it. Workers
beyond a few idle ones exit.

Sending writes straight through to the stream when nothing is queued ahead (no task switch);
otherwise messages go into an outbox that one writer task drains, several per write. The
callback table holds only what the peer may still invoke: response callbacks leave it on
reply, timeout or disconnect.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from kitecore.protocol import dnode
from kitecore.protocol.envelope import parse_response
from kitecore.protocol.errors import (
    DisconnectError,
    KiteError,
    KiteTimeoutError,
    ProtocolError,
    SendError,
)
from kitecore.transport import MessageStream, PeerInfo
from kitecore.waiter import Waiter, WaitTimeout, waiter_factory

logger = logging.getLogger(__name__)

#: Receives ``(connection, method, arguments)`` for each incoming method call.
Dispatcher = Callable[["Connection", str, list[Any]], Awaitable[None]]

#: Messages waiting in the outbox past which the reader stops reading (backpressure).
_OUTBOX_HIGH_WATER = 1024
#: Idle workers kept per connection; more exit when they run out of work.
_MAX_IDLE_WORKERS = 32
_STREAM_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError)


class PendingCall:
    """A call waiting for its response callback; itself the callback placed in the request."""

    __slots__ = ("method", "waiter")

    def __init__(self, method: str, waiter: Waiter) -> None:
        self.method = method
        self.waiter = waiter

    def resolve(self, arguments: list[Any]) -> None:
        try:
            self.waiter.set_result(parse_response(arguments))
        except KiteError as exc:
            self.waiter.set_exception(exc)

    def fail(self, error: BaseException) -> None:
        self.waiter.set_exception(error)


class RemoteCallback:
    """A function the peer passed us; calling it sends the arguments back to the peer.

    ``cb(x)`` queues the invocation at once and returns an awaitable, so both
    ``cb(x)`` and ``await cb(x)`` work. Invoking it after the connection closed raises
    :class:`SendError`.
    """

    __slots__ = ("_connection", "id")

    def __init__(self, connection: Connection, callback_id: int) -> None:
        self._connection = connection
        self.id = callback_id

    def __call__(self, *args: Any) -> _Done:
        self._connection.send_call(self.id, list(args))
        return _DONE

    def __repr__(self) -> str:
        return f"<RemoteCallback {self.id} on {self._connection!r}>"


class _Done:
    """An awaitable that is already complete."""

    __slots__ = ()

    def __await__(self):  # type: ignore[no-untyped-def]
        return iter(())


_DONE = _Done()


class Connection:
    """A dnode session. Create it inside the event loop, then ``await run()``."""

    def __init__(
        self,
        stream: MessageStream,
        dispatcher: Dispatcher,
        *,
        peer: PeerInfo,
        dialed: bool,
        max_message_size: int = 16 * 1024 * 1024,
    ) -> None:
        self.stream = stream
        self.peer = peer
        #: True when the local kite dialed this connection (requests on it are trusted).
        self.dialed = dialed
        self.max_message_size = max_message_size
        self.close_reason = ""
        self._dispatch = dispatcher
        self.new_waiter = waiter_factory()
        self._callbacks: dict[int, Any] = {}
        self._next_callback_id = 0
        # sending
        # streams that can write without a task switch (the WebSocket one) offer write_nowait
        self._write_nowait: Callable[[list[str]], bool] | None = getattr(
            stream, "write_nowait", None
        )
        self._outbox: list[str] = []
        self._writer_waiter: Waiter | None = None
        # the writer and the ordered-callback runner start when first needed: most
        # WebSocket connections never need the writer, many never see a callback
        self._writer_started = False
        self._ordered_started = False
        self._drained: Waiter | None = None
        # ordered callbacks: the queue is made on the first callback the peer invokes
        self._ordered_send: MemoryObjectSendStream[tuple[Any, list[Any]]] | None = None
        self._ordered_receive: MemoryObjectReceiveStream[tuple[Any, list[Any]]] | None = None
        # worker pool
        self._requests: deque[tuple[str, list[Any]]] = deque()
        self._idle_workers: list[Waiter] = []
        self._waking = 0
        self._task_group: TaskGroup | None = None
        self._closed = False
        # run() finished; the event is made only if someone waits (most never do)
        self._run_done = False
        self._finished: anyio.Event | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.peer.transport} {self.peer.remote_address or '?'}>"

    # ---------------------------------------------------------------- state

    @property
    def closed(self) -> bool:
        """True once the stream ended or :meth:`close` was called."""
        return self._closed

    @property
    def pending_callbacks(self) -> int:
        """How many local callbacks the peer may still invoke (for tests and metrics)."""
        return len(self._callbacks)

    @property
    def backlog(self) -> int:
        """How many messages wait to be handed to the transport (the peer is not keeping up
        when this grows); senders that must not queue without bound check it."""
        return len(self._outbox)

    async def wait_closed(self) -> None:
        """Return when :meth:`run` has finished."""
        if self._run_done:
            await anyio.lowlevel.checkpoint()
            return
        if self._finished is None:
            self._finished = anyio.Event()
        await self._finished.wait()

    # ---------------------------------------------------------------- sending

    def register_callback(self, function: Any) -> int:
        """Store a local function the peer may invoke; returns its id."""
        callback_id = self._next_callback_id
        self._next_callback_id = callback_id + 1
        self._callbacks[callback_id] = function
        return callback_id

    def forget_callback(self, callback_id: int) -> None:
        self._callbacks.pop(callback_id, None)

    def send_call(self, method: str | int, arguments: list[Any]) -> None:
        """Send a message calling ``method`` with ``arguments`` (functions become callbacks)."""
        scrubbed, callbacks = dnode.scrub(arguments, self.register_callback)
        self.send_text(dnode.encode_call(method, scrubbed, callbacks))

    def send_text(self, text: str) -> None:
        """Send one encoded message: written at once if nothing is queued, else queued."""
        if self._closed:
            raise SendError("can't send, client is closed")
        if not self._outbox and self._write_nowait is not None:
            try:
                if self._write_nowait([text]):
                    if self.stream.pending_bytes:  # type: ignore[attr-defined]
                        self._wake_writer()
                    return
            except _STREAM_GONE as exc:
                self._shutdown(DisconnectError("Remote kite has disconnected"))
                raise SendError(f"can't send, connection lost: {exc}") from None
        self._outbox.append(text)
        self._wake_writer()

    def _wake_writer(self) -> None:
        """Make sure the writer task runs: wake it, or start it on first need."""
        waiter = self._writer_waiter
        if waiter is not None:
            waiter.set_result(None)
        elif not self._writer_started and self._task_group is not None:
            self._writer_started = True
            self._task_group.start_soon(self._write_loop)

    def call(
        self,
        method: str,
        arguments: list[Any],
        callbacks: dict[str, list[int | str]],
    ) -> tuple[PendingCall, int]:
        """Send a prepared request and return its pending reply and response-callback id.

        ``arguments`` must already be scrubbed and ``callbacks`` map the ids the scrubbing
        assigned; the response callback goes at ``[0, "responseCallback"]``.
        """
        callback_id = self._next_callback_id
        self._next_callback_id = callback_id + 1
        callbacks[str(callback_id)] = [0, "responseCallback"]
        self.send_text(dnode.encode_call(method, arguments, callbacks))
        # registered only once sent (no reply can arrive before we yield): a send that fails,
        # and shuts the connection down on the way, leaves no pending call nobody waits for
        pending = PendingCall(method, self.new_waiter())
        self._callbacks[callback_id] = pending
        return pending, callback_id

    async def wait_response(
        self, pending: PendingCall, callback_id: int, timeout: float | None
    ) -> Any:
        """Wait for ``pending``; on timeout forget its callback and raise ``timeout``."""
        if timeout is not None and timeout <= 0:
            timeout = None
        try:
            return await pending.waiter.wait(timeout)
        except WaitTimeout:
            raise KiteTimeoutError(
                f'No response to "{pending.method}" method in {timeout:g}s'
            ) from None
        finally:
            self._callbacks.pop(callback_id, None)

    # ---------------------------------------------------------------- running

    def spawn(self, function: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Run ``function(*args)`` in this connection's task group (cancelled on close)."""
        if self._task_group is None:
            raise SendError("can't start work, connection is not running")
        self._task_group.start_soon(function, *args)

    async def run(self) -> None:
        """Serve the connection until the stream ends or :meth:`close` is called."""
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                if self._outbox or getattr(self.stream, "pending_bytes", 0):
                    self._wake_writer()
                await self._read_loop()
                tg.cancel_scope.cancel()
        finally:
            self._task_group = None
            self._shutdown(DisconnectError("Remote kite has disconnected"))
            await self._close_stream()
            self._run_done = True
            if self._finished is not None:
                self._finished.set()

    async def close(self, reason: str = "") -> None:
        """Close the connection; pending calls fail with ``disconnect``. Idempotent."""
        if self._closed:
            return
        self.close_reason = reason
        self._shutdown(DisconnectError("Remote kite has disconnected"))
        await self._close_stream()

    async def _close_stream(self) -> None:
        """Close the stream, shielded from cancellation (by the stream itself if it says so:
        a cancel scope costs several microseconds per connection)."""
        if getattr(self.stream, "aclose_shielded", False):
            await self._aclose_stream()
        else:
            with anyio.CancelScope(shield=True):
                await self._aclose_stream()

    async def _aclose_stream(self) -> None:
        try:
            await self.stream.aclose()
        except Exception:  # closing a dead stream may fail in any way
            logger.debug("error closing stream of %r", self, exc_info=True)

    def _shutdown(self, error: KiteError) -> None:
        if not self._closed:
            self._closed = True
            for waiter in (self._writer_waiter, self._drained):
                if waiter is not None:
                    waiter.set_result(None)
        callbacks, self._callbacks = self._callbacks, {}
        for function in callbacks.values():
            if isinstance(function, PendingCall):
                function.fail(error)
        self._requests.clear()
        if self._ordered_send is not None:
            self._ordered_send.close()

    async def _read_loop(self) -> None:
        stream = self.stream
        while True:
            try:
                text = await stream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:
                logger.info("%r: connection lost: %s", self, exc)
                return
            self.handle_text(text)
            if len(self._outbox) > _OUTBOX_HIGH_WATER and not self._closed:
                self._drained = self.new_waiter()
                await self._drained.wait()
                self._drained = None

    def handle_text(self, text: str) -> None:
        """Process one received message (public for transports that push messages)."""
        if len(text) > self.max_message_size:
            logger.warning(
                "%r: dropped a message of %d characters (limit %d)",
                self,
                len(text),
                self.max_message_size,
            )
            return
        try:
            message = dnode.decode(text)
        except ProtocolError as exc:
            logger.warning("%r: dropped a malformed message: %s", self, exc.message)
            return
        method = message.method
        arguments = message.arguments
        if message.callbacks:
            dnode.unscrub(arguments, message.callbacks, self._make_proxy)
        if isinstance(method, str):
            if self._task_group is not None and not self._closed:
                self._requests.append((method, arguments))
                if not self._waking:
                    self._wake_worker()
            return
        function = self._callbacks.get(method)
        if function is None:
            logger.info(
                "%r: ignored a call of unknown callback %d (answered, timed out or never sent)",
                self,
                method,
            )
        elif isinstance(function, PendingCall):
            del self._callbacks[method]
            function.resolve(arguments)
        else:
            if self._ordered_send is None:
                self._ordered_send, self._ordered_receive = anyio.create_memory_object_stream[
                    tuple[Any, list[Any]]
                ](math.inf)
                if self._closed:
                    self._ordered_send.close()
            self._ordered_send.send_nowait((function, arguments))
            if not self._ordered_started and self._task_group is not None:
                self._ordered_started = True
                self._task_group.start_soon(self._ordered_loop)

    # ---------------------------------------------------------------- worker pool

    def _wake_worker(self) -> None:
        """Get one more worker onto the request queue: an idle one, or a new one."""
        self._waking += 1
        if self._idle_workers:
            self._idle_workers.pop().set_result(None)
        else:
            assert self._task_group is not None
            self._task_group.start_soon(self._worker)

    async def _worker(self) -> None:
        requests = self._requests
        while True:
            self._waking -= 1  # awake: this worker takes from the queue now
            while requests:
                method, arguments = requests.popleft()
                if requests and not self._waking:
                    # if this call blocks, another worker takes the ones behind it
                    self._wake_worker()
                try:
                    await self._dispatch(self, method, arguments)
                except Exception:
                    logger.exception("%r: dispatching %s failed", self, method)
            if len(self._idle_workers) >= _MAX_IDLE_WORKERS or self._closed:
                return
            waiter = self.new_waiter()
            self._idle_workers.append(waiter)
            await waiter.wait()

    # ---------------------------------------------------------------- callbacks, writer

    async def _ordered_loop(self) -> None:
        receive = self._ordered_receive
        assert receive is not None
        async with receive:
            async for function, arguments in receive:
                try:
                    outcome = function(*arguments)
                    if hasattr(outcome, "__await__"):
                        await outcome
                except Exception:
                    logger.exception("%r: callback %r raised", self, function)

    async def _write_loop(self) -> None:
        stream = self.stream
        send_many = getattr(stream, "send_many", None)
        flush = getattr(stream, "flush", None)
        while not self._closed:
            if not self._outbox and not getattr(stream, "pending_bytes", 0):
                waiter = self._writer_waiter = self.new_waiter()
                await waiter.wait()
                self._writer_waiter = None
                continue
            batch, self._outbox = self._outbox, []
            try:
                if not batch:
                    await flush()  # what a direct write left over
                elif send_many is not None:
                    await send_many(batch)
                else:
                    for text in batch:
                        await stream.send(text)
            except _STREAM_GONE as exc:
                logger.debug("%r: send failed: %s", self, exc)
                self._shutdown(DisconnectError("Remote kite has disconnected"))
                await self._close_stream()
                return
            if self._drained is not None:
                self._drained.set_result(None)

    def _make_proxy(self, callback_id: int) -> RemoteCallback:
        return RemoteCallback(self, callback_id)
