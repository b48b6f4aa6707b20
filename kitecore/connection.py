"""One dnode session over a message stream, shared by the server and client sides.

A :class:`Connection` reads whole messages from its stream, decodes them, and
- resolves pending calls when a response callback comes back (inline, cheap),
- runs the other callbacks the peer invokes one at a time, in arrival order,
- hands method calls to the kite's dispatcher, each in its own task, concurrently.

Outgoing messages go into an outbox that one writer task drains, so many replies that
become ready together leave in one socket write. The callback table holds only what the
peer may still invoke: response callbacks leave it on reply, timeout or disconnect.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

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

logger = logging.getLogger(__name__)

#: Receives ``(connection, method, arguments)`` for each incoming method call.
Dispatcher = Callable[["Connection", str, list[Any]], Awaitable[None]]

_FUNCTION = "[Function]"
#: Messages waiting in the outbox past which the reader stops reading (backpressure).
_OUTBOX_HIGH_WATER = 1024


class PendingCall:
    """A call waiting for its response callback; itself the callback placed in the request."""

    __slots__ = ("_event", "error", "method", "result")

    def __init__(self, method: str) -> None:
        self.method = method
        self.result: Any = None
        self.error: BaseException | None = None
        self._event = anyio.Event()

    def resolve(self, arguments: list[Any]) -> None:
        try:
            self.result = parse_response(arguments)
        except KiteError as exc:
            self.error = exc
        self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self.error = error
            self._event.set()

    async def wait(self) -> Any:
        await self._event.wait()
        if self.error is not None:
            raise self.error
        return self.result


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
    """A dnode session. Create it, then ``await run()`` inside a task group."""

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
        self._dispatch = dispatcher
        self._callbacks: dict[int, Any] = {}
        self._next_callback_id = 0
        self._outbox: list[str] = []
        self._outbox_ready = anyio.Event()
        self._drained = anyio.Event()
        self._ordered_send, self._ordered_receive = anyio.create_memory_object_stream[
            tuple[Any, list[Any]]
        ](math.inf)
        self._task_group: TaskGroup | None = None
        self._closed = False
        self._finished = anyio.Event()
        self.close_reason = ""

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

    async def wait_closed(self) -> None:
        """Return when :meth:`run` has finished."""
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
        """Queue a message calling ``method`` with ``arguments`` (functions become callbacks)."""
        scrubbed, callbacks = dnode.scrub(arguments, self.register_callback)
        self.send_text(dnode.encode_call(method, scrubbed, callbacks))

    def send_text(self, text: str) -> None:
        """Queue one encoded message for the writer task."""
        if self._closed:
            raise SendError("can't send, client is closed")
        self._outbox.append(text)
        self._outbox_ready.set()

    def call(
        self,
        method: str,
        arguments: list[Any],
        callbacks: dict[str, list[int | str]],
        pending: PendingCall,
    ) -> int:
        """Send a prepared request whose response callback is ``pending``.

        ``arguments`` must already be scrubbed; ``callbacks`` maps the ids the scrubbing
        assigned, and the response callback's id is returned (to forget it on timeout).
        """
        callback_id = self.register_callback(pending)
        callbacks[str(callback_id)] = [0, "responseCallback"]
        try:
            self.send_text(dnode.encode_call(method, arguments, callbacks))
        except BaseException:
            self._callbacks.pop(callback_id, None)
            raise
        return callback_id

    async def wait_response(
        self, pending: PendingCall, callback_id: int, timeout: float | None
    ) -> Any:
        """Wait for ``pending``; on timeout forget its callback and raise ``timeout``."""
        if timeout is None or timeout <= 0 or math.isinf(timeout):
            try:
                return await pending.wait()
            finally:
                self._callbacks.pop(callback_id, None)
        with anyio.move_on_after(timeout) as scope:
            try:
                return await pending.wait()
            finally:
                self._callbacks.pop(callback_id, None)
        if scope.cancelled_caught:
            raise KiteTimeoutError(
                f'No response to "{pending.method}" method in {_seconds(timeout)}'
            )
        raise AssertionError("unreachable")  # pragma: no cover

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
                tg.start_soon(self._write_loop)
                tg.start_soon(self._ordered_loop)
                await self._read_loop()
                tg.cancel_scope.cancel()
        finally:
            self._task_group = None
            self._shutdown(DisconnectError("Remote kite has disconnected"))
            with anyio.CancelScope(shield=True):
                try:
                    await self.stream.aclose()
                except Exception:
                    logger.debug("error closing stream of %r", self, exc_info=True)
                self._finished.set()

    async def close(self, reason: str = "") -> None:
        """Close the connection; pending calls fail with ``disconnect``. Idempotent."""
        if self._closed:
            return
        self.close_reason = reason
        self._shutdown(DisconnectError("Remote kite has disconnected"))
        with anyio.CancelScope(shield=True):
            try:
                await self.stream.aclose()
            except Exception:
                logger.debug("error closing stream of %r", self, exc_info=True)

    def _shutdown(self, error: KiteError) -> None:
        if not self._closed:
            self._closed = True
            self._outbox_ready.set()
            self._drained.set()
        callbacks, self._callbacks = self._callbacks, {}
        for function in callbacks.values():
            if isinstance(function, PendingCall):
                function.fail(error)
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
            if len(self._outbox) > _OUTBOX_HIGH_WATER:
                self._drained = anyio.Event()
                await self._drained.wait()

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
            if self._task_group is None:
                return
            self._task_group.start_soon(self._dispatch, self, method, arguments)
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
            self._ordered_send.send_nowait((function, arguments))

    async def _ordered_loop(self) -> None:
        async with self._ordered_receive:
            async for function, arguments in self._ordered_receive:
                try:
                    outcome = function(*arguments)
                    if hasattr(outcome, "__await__"):
                        await outcome
                except Exception:
                    logger.exception("%r: callback %r raised", self, function)

    async def _write_loop(self) -> None:
        stream = self.stream
        send_many = getattr(stream, "send_many", None)
        while True:
            await self._outbox_ready.wait()
            self._outbox_ready = anyio.Event()
            if self._closed:
                return
            batch, self._outbox = self._outbox, []
            self._drained.set()
            try:
                if send_many is not None and len(batch) > 1:
                    await send_many(batch)
                else:
                    for text in batch:
                        await stream.send(text)
            except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError) as exc:
                logger.debug("%r: send failed: %s", self, exc)
                self._shutdown(DisconnectError("Remote kite has disconnected"))
                with anyio.CancelScope(shield=True):
                    await self.stream.aclose()
                return

    def _make_proxy(self, callback_id: int) -> RemoteCallback:
        return RemoteCallback(self, callback_id)


def _seconds(timeout: float) -> str:
    return f"{timeout:g}s"
