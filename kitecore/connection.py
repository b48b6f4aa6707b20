"""One dnode session over a message stream, shared by the server and client sides.

The session state (callback ids, the callback table, pending calls, the order callbacks run
in) lives in a sans-IO :class:`~kitecore.protocol.session.Session`; a :class:`Connection` is
its driver. It reads whole messages from its stream, feeds them to the session, and
- runs method calls concurrently: the reader starts each call itself, and when the call has
  to wait for something, the reading goes over to another task (an idle worker, or a new one)
  while this one finishes the call. A call that never waits (most do not) costs no task switch;
- runs callbacks and delivers replies in arrival order: inline in the reader while they are
  synchronous (a reply costs no task switch), in one ordered-callback task while a callback
  returned an awaitable (what arrives meanwhile waits in the session, in order). On a stream
  that hands messages over as they arrive (``ReceiveHook``: the asyncio WebSocket driver),
  a reply to a call of ours is taken there and then, without waking the reader at all.

The worker pool is what a task per call would be, without creating a task per call: an idle
worker is woken to take over the reading (or for a call pushed through :meth:`handle_text`),
and a worker about to run a queued call wakes another one first when more calls are waiting,
so a call that blocks never holds up the ones behind it. Workers beyond a few idle ones exit.

Sending writes straight through to the stream when nothing is queued ahead (no task switch);
otherwise messages go into an outbox that one writer task drains, several per write. Reply
timeouts share one coarse loop timer (``kitecore.waiter``).
"""

from __future__ import annotations

import functools
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Generator
from contextvars import ContextVar
from typing import Any

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup

from kitecore.protocol import dnode
from kitecore.protocol.envelope import RequestEncoder, response_arguments
from kitecore.protocol.errors import (
    DisconnectError,
    KiteError,
    KiteTimeoutError,
    SendError,
)
from kitecore.protocol.session import (
    DEFAULT_MAX_CALLBACKS,
    CallbackInvoked,
    CallReceived,
    CallRejected,
    MessageDropped,
    ResponseReceived,
    Session,
)
from kitecore.transport import (
    MessageStream,
    PeerInfo,
    ReceiveHook,
    batch_send,
    closes_shielded,
    direct_write,
    holds_writes,
    outbound_count,
    receive_hook,
)
from kitecore.waiter import Waiter, WaitTimeout, waiter_factory

logger = logging.getLogger(__name__)

#: Receives ``(connection, method, arguments)`` for each incoming method call (an ``async def``:
#: the connection steps its coroutine itself).
Dispatcher = Callable[["Connection", str, list[Any]], Coroutine[Any, Any, None]]

#: Messages waiting in the outbox past which the reader stops reading (backpressure).
_OUTBOX_HIGH_WATER = 1024
#: Callback invocations waiting behind a running callback past which the reader stops reading.
_ORDERED_HIGH_WATER = 1024
#: Calls of the peer queued or being served on one connection past which the reader stops
#: reading from it (``Config.max_pending_calls``; docs/limits.md).
DEFAULT_MAX_PENDING_CALLS = 1024
#: Idle workers kept per connection; more exit when they run out of work.
_MAX_IDLE_WORKERS = 32
_STREAM_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError)
#: Calls of the peer waiting for a worker: a deque once the first one is queued.
_Requests = deque[tuple[str, list[Any]]] | tuple[()]
_NO_REQUESTS: tuple[()] = ()

#: How a message calling a callback id starts, as Kite, Go and kite.js encode it (the method
#: first): the receive hook takes a reply it can see from this prefix without parsing it first.
_CALLBACK_PREFIX = '{"method":'
_CALLBACK_PREFIX_LEN = len(_CALLBACK_PREFIX)
_DIGITS = frozenset("0123456789")

#: The connection whose ordered-callback task is running the current code, if any: a call made
#: from inside a callback gets its reply on arrival (waiting for the callback would deadlock).
_IN_CALLBACK_OF: ContextVar[Connection | None] = ContextVar("_IN_CALLBACK_OF", default=None)


class PendingCall:
    """A call waiting for its response callback."""

    __slots__ = ("method", "waiter")

    def __init__(self, method: str, waiter: Waiter) -> None:
        self.method = method
        self.waiter = waiter

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

    def send_result(self, result: Any) -> None:
        """Call it as a response callback with ``{"error": None, "result": result}``."""
        self._connection.send_reply(self.id, result)

    def __repr__(self) -> str:
        return f"<RemoteCallback {self.id} on {self._connection!r}>"


class _Done:
    """An awaitable that is already complete."""

    __slots__ = ()

    def __await__(self) -> Generator[None, None, None]:
        yield from ()


_DONE = _Done()


class Connection:
    """A dnode session. Create it inside the event loop, then ``await run()``."""

    # Slots: one connection per peer, and an idle server holds thousands. An instance dict
    # of this many attributes is a table of its own (some 1.5 KiB per connection, measured).
    __slots__ = (
        "__weakref__",
        "_closed",
        "_direct",
        "_dispatch",
        "_drained",
        "_finished",
        "_hold",
        "_hook_wanted",
        "_idle_seen",
        "_idle_workers",
        "_max_pending_calls",
        "_ordered_awaitable",
        "_ordered_drained",
        "_ordered_full",
        "_ordered_started",
        "_ordered_waiter",
        "_others",
        "_outbound",
        "_outbox",
        "_reader_wanted",
        "_requests",
        "_run_done",
        "_running_calls",
        "_task_group",
        "_waking",
        "_workers",
        "_writer_started",
        "_writer_waiter",
        "chars_in",
        "chars_out",
        "close_reason",
        "dialed",
        "keep_when_idle",
        "messages_in",
        "messages_out",
        "new_waiter",
        "peer",
        "session",
        "stream",
    )

    def __init__(
        self,
        stream: MessageStream,
        dispatcher: Dispatcher,
        *,
        peer: PeerInfo,
        dialed: bool,
        max_message_size: int = 16 * 1024 * 1024,
        max_callbacks: int = DEFAULT_MAX_CALLBACKS,
        max_pending_calls: int = DEFAULT_MAX_PENDING_CALLS,
    ) -> None:
        self.stream = stream
        self.peer = peer
        #: True when the local kite dialed this connection (requests on it are trusted).
        self.dialed = dialed
        self.close_reason = ""
        #: Never closed for being idle (:mod:`kitecore.idle`): set on connections kept open
        #: on purpose, such as a kite's registration with a proxy.
        self.keep_when_idle = False
        # what the idle sweeper saw last: messages_in + messages_out, and since when unchanged
        self._idle_seen: tuple[int, float] = (-1, 0.0)
        #: Messages received and sent, and their sizes in characters (for metrics).
        self.messages_in = self.messages_out = self.chars_in = self.chars_out = 0
        self._dispatch = dispatcher
        self.new_waiter = waiter_factory()
        #: The dnode session state: callback table, pending calls, callback order.
        self.session = Session(
            # (a partial, not a method: no Python frame per callback the peer sends)
            functools.partial(RemoteCallback, self),
            max_message_size=max_message_size,
            max_callbacks=max_callbacks,
        )
        # sending
        # the stream's optional abilities (kitecore.transport), judged once per class:
        # streams that can write without a task switch (the WebSocket one) offer write_nowait
        self._direct = direct_write(stream)
        self._outbound = outbound_count(stream)
        self._hold = holds_writes(stream)
        # the stream's receive hook, on an accepted connection until its first call of ours
        self._hook_wanted: ReceiveHook | None = None
        self._outbox: list[str] = []
        self._writer_waiter: Waiter | None = None
        # the writer and the ordered-callback runner start when first needed: most
        # WebSocket connections never need the writer, many never see a callback
        self._writer_started = False
        self._drained: Waiter | None = None
        # the ordered-callback task: started by the first callback that returns an awaitable,
        # which it awaits before it asks the session for what arrived meanwhile
        self._ordered_started = False
        self._ordered_awaitable: Any = None
        self._ordered_waiter: Waiter | None = None
        self._ordered_drained: Waiter | None = None
        self._ordered_full = False  # the reader waits for the ordered task to catch up
        # worker pool; the queue is made for the first call pushed through handle_text (the
        # reader starts the calls it reads itself): an empty deque is some 600 bytes
        self._requests: _Requests = _NO_REQUESTS
        self._idle_workers: list[Waiter] = []
        self._waking = 0
        self._workers = 0  # counted per worker task, not per call
        # the other tasks alive in the task group: writer, ordered runner, spawned ones
        self._others = 0
        self._reader_wanted = False  # the next worker to wake takes over the reading
        self._running_calls = 0  # calls being served (one that never waits is never seen)
        self._max_pending_calls = max_pending_calls
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
        """True once the stream ended or :meth:`aclose` was called."""
        return self._closed

    @property
    def max_message_size(self) -> int:
        """Largest message accepted from the peer, in characters."""
        return self.session.max_message_size

    @property
    def pending_callbacks(self) -> int:
        """How many local callbacks the peer may still invoke (for tests and metrics)."""
        return self.session.callback_count

    @property
    def backlog(self) -> int:
        """How many messages wait to be handed to the transport (the peer is not keeping up
        when this grows); senders that must not queue without bound check it."""
        return len(self._outbox)

    @property
    def queued_bytes(self) -> int:
        """Bytes (characters, for the outbox) written for the peer and not yet taken by it:
        the outbox plus what the stream holds (``outbound_bytes``, when it says)."""
        queued = self._outbound.outbound_bytes if self._outbound is not None else 0
        return queued + sum(len(text) for text in self._outbox)

    @property
    def in_flight(self) -> bool:
        """Whether a call is in flight on this connection, either way: a call of the peer's
        queued or being served, a call of ours waiting for its reply, or a callback the peer
        invoked still running. Callbacks merely held (a heartbeat's ``ping``, a watch
        handler) are not calls in flight."""
        session = self.session
        return (
            self.busy
            or session.callback_count > session.function_count  # response callbacks pending
            or (self._ordered_started and self._ordered_waiter is None and not self._closed)
        )

    def quiet_for(self, now: float) -> float:
        """Seconds this connection has been idle -- no message either way and no call in
        flight -- as seen by successive calls with the current time ``now`` (the idle
        sweeper's clock); 0.0 when something happened since the previous call. Costs the
        message path nothing: it compares the message counters."""
        mark = self.messages_in + self.messages_out
        seen, since = self._idle_seen
        if mark != seen or self.in_flight:
            self._idle_seen = (mark, now)
            return 0.0
        return now - since

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
        """Store a local function the peer may invoke; returns its id.

        Raises :class:`~kitecore.protocol.session.CallbackLimitError` past the connection's
        callback limit; prefer :meth:`scrub`, which registers all of a message's or none.
        """
        return self.session.register(function)

    def scrub(self, arguments: list[Any]) -> tuple[list[Any], dict[str, dnode.Path]]:
        """Replace the functions in ``arguments`` by callbacks registered here (all or none)."""
        if self._closed:
            raise SendError("can't send, client is closed")
        return self.session.scrub(arguments)

    def forget_callback(self, callback_id: int) -> None:
        """Drop a callback the peer may no longer invoke."""
        self.session.forget(callback_id)

    def send_call(self, method: str | int, arguments: list[Any]) -> None:
        """Send a message calling ``method`` with ``arguments`` (functions become callbacks)."""
        if self._closed:
            raise SendError("can't send, client is closed")
        self.send_text(self.session.encode_call(method, arguments))

    def send_text(self, text: str) -> None:
        """Send one encoded message: written at once if nothing is queued, else queued."""
        if self._closed:
            raise SendError("can't send, client is closed")
        self.messages_out += 1
        self.chars_out += len(text)
        direct = self._direct
        if not self._outbox and direct is not None:
            try:
                if direct.write_nowait([text]):
                    if direct.pending_bytes:
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

    def send_reply(self, callback_id: int, result: Any) -> None:
        """Answer the peer's response callback ``callback_id`` with ``result`` (no error):
        what calling its :class:`RemoteCallback` with ``{"error": None, "result": result}``
        does, without building that first."""
        if self._closed:
            raise SendError("can't send, client is closed")
        if type(result) in dnode.SCALAR_TYPES:  # no function to scrub: the session's step 1
            self.send_text(dnode.encode_reply(callback_id, result))
        else:
            self.send_text(self.session.encode_reply(callback_id, result))

    def call(
        self,
        method: str,
        encoder: RequestEncoder,
        with_args: list[Any],
        callbacks: dict[str, dnode.Path],
        extra: dict[str, Any] | None = None,
    ) -> tuple[PendingCall, int]:
        """Send a request and return its pending reply and response-callback id.

        ``with_args`` must already be scrubbed (:meth:`scrub`) and ``callbacks`` map the ids
        the scrubbing assigned to paths under ``[0, "withArgs"]``; the response callback goes
        at ``[0, "responseCallback"]``. ``encoder`` holds the caller's identity and
        authentication; ``extra`` adds call options (see :meth:`RequestEncoder.encode`).
        """
        session = self.session
        callback_id = session.new_id()
        if callbacks:
            callbacks[str(callback_id)] = [0, "responseCallback"]
            self.send_text(encoder.encode(method, with_args, callbacks, extra))
        else:  # the common call: no function among the arguments (maybe call metadata)
            self.send_text(encoder.encode_plain(method, with_args, callback_id, extra))
        # registered only once sent (no reply can arrive before we yield): a send that fails,
        # and shuts the connection down on the way, leaves no pending call nobody waits for
        pending = PendingCall(method, self.new_waiter())
        # a call made by a callback this connection is running is answered on arrival:
        # queued behind that callback, its reply would never come
        session.expect_response(callback_id, pending, ordered=_IN_CALLBACK_OF.get() is not self)
        if self._hook_wanted is not None:  # our first call on an accepted connection
            self._hook_wanted.set_receive_hook(self._take_reply)
            self._hook_wanted = None
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
            self.session.forget(callback_id)
            raise KiteTimeoutError(
                f'No response to "{pending.method}" method in {timeout:g}s'
            ) from None
        except BaseException:  # cancelled, or an error reply (already gone from the table)
            self.session.forget(callback_id)
            raise

    # ---------------------------------------------------------------- running

    def spawn(self, function: Callable[..., Coroutine[Any, Any, object]], *args: Any) -> None:
        """Run ``function(*args)`` in this connection's task group (cancelled on close)."""
        if self._task_group is None:
            raise SendError("can't start work, connection is not running")
        self._others += 1  # from now: it may block on anything (see _end_tasks)
        self._task_group.start_soon(self._spawned, function, args)

    async def _spawned(
        self, function: Callable[..., Coroutine[Any, Any, object]], args: tuple[Any, ...]
    ) -> None:
        try:
            await function(*args)
        finally:
            self._others -= 1

    async def run(self) -> None:
        """Serve the connection until the stream ends or :meth:`aclose` is called."""
        # a stream that can hand over messages as they arrive gives replies to their callers
        # then and there: no task switch to the reader first (kitecore.transport.ReceiveHook)
        hooked = receive_hook(self.stream)
        if hooked is not None:
            if self.dialed or self.session.pending_count:
                hooked.set_receive_hook(self._take_reply)
            else:  # accepted: most never call their peer, and until then no message is a
                self._hook_wanted = hooked  # reply (the hook comes with the first call)
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                if self._outbox or (self._direct is not None and self._direct.pending_bytes):
                    self._wake_writer()
                if self._ordered_awaitable is not None:  # a callback ran before run()
                    self._ordered_started = True
                    tg.start_soon(self._ordered_loop)
                if await self._read_loop():
                    await self._end_tasks(tg)
                # else: a worker reads now; the task group ends when it has seen the end
        finally:
            if hooked is not None:
                self._hook_wanted = None
                hooked.set_receive_hook(None)  # (it refers to this connection: a cycle)
            self._task_group = None
            self._shutdown(DisconnectError("Remote kite has disconnected"))
            await self._close_stream()
            self._run_done = True
            if self._finished is not None:
                self._finished.set()

    async def aclose(self, reason: str = "", *, code: int | None = None) -> None:
        """Close the connection; pending calls fail with ``disconnect``. Idempotent.

        With ``code``, a stream that can say why it closes (WebSocket, SockJS: ``aclose(code,
        reason)``) sends that close code and ``reason`` to the peer."""
        if self._closed:
            return
        self.close_reason = reason
        self._shutdown(DisconnectError("Remote kite has disconnected"))
        await self._close_stream(code)

    async def close(self, reason: str = "", *, code: int | None = None) -> None:
        """Alias of :meth:`aclose`, kept for existing callers."""
        await self.aclose(reason, code=code)

    async def _close_stream(self, code: int | None = None) -> None:
        """Close the stream, shielded from cancellation (by the stream itself if it says so:
        a cancel scope costs several microseconds per connection)."""
        if closes_shielded(self.stream):  # (judged once per class)
            await self._aclose_stream(code)
        else:
            with anyio.CancelScope(shield=True):
                await self._aclose_stream(code)

    async def _aclose_stream(self, code: int | None) -> None:
        stream: Any = self.stream
        try:
            if code is None:
                await stream.aclose()
                return
            try:  # WebSocket and SockJS streams take a close code and a reason
                closing = stream.aclose(code, self.close_reason)
            except TypeError:  # a plain ObjectStream: aclose() takes no arguments
                closing = stream.aclose()
            await closing
        except Exception:  # closing a dead stream may fail in any way
            logger.debug("error closing stream of %r", self, exc_info=True)

    def _shutdown(self, error: KiteError) -> None:
        if not self._closed:
            self._closed = True
            for waiter in (
                self._writer_waiter,
                self._drained,
                self._ordered_waiter,
                self._ordered_drained,
            ):
                if waiter is not None:
                    waiter.set_result(None)
            for waiter in self._idle_workers:
                waiter.set_result(None)
            self._idle_workers.clear()
        for pending in self.session.close():
            pending.fail(error)
        if isinstance(self._requests, deque):
            self._requests.clear()
        awaitable, self._ordered_awaitable = self._ordered_awaitable, None
        if awaitable is not None and hasattr(awaitable, "close"):
            awaitable.close()  # a coroutine the ordered task never started

    async def _read_loop(self) -> bool:
        """Read and handle messages. Returns True when the stream has ended, False when a
        call this task started had to wait: another task reads now, and this one has
        finished that call."""
        stream = self.stream
        dispatch = self._dispatch
        while True:
            # checked before each read, by whichever task reads (a call that waits hands the
            # reading to another task): the peer's calls wait in TCP until about half of
            # those here are done, so a flood costs a bounded number of tasks and requests
            while (  # self.pending_calls, inlined: this runs for every message
                len(self._requests) + self._running_calls > self._max_pending_calls
                and not self._closed
            ):
                self._drained = self.new_waiter()
                await self._drained.wait()
                self._drained = None
            try:
                text = await stream.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
                return True
            except OSError as exc:
                logger.info("%r: connection lost: %s", self, exc)
                return True
            call = self._receive(text)
            if call is not None:
                # Start the call here; most finish without waiting, and then no task switch
                # was needed. One that waits is finished by this task, and another reads.
                coroutine = dispatch(self, call.method, call.arguments)
                try:
                    awaited = coroutine.send(None)
                except StopIteration:
                    pass
                except Exception:
                    logger.exception("%r: dispatching %s failed", self, call.method)
                else:
                    self._reader_wanted = True
                    self._wake_worker()
                    self._running_calls += 1
                    try:
                        await _Resumed(coroutine, awaited)
                    except Exception:
                        logger.exception("%r: dispatching %s failed", self, call.method)
                    finally:
                        self._call_finished()
                    return False
            if len(self._outbox) > _OUTBOX_HIGH_WATER and not self._closed:
                self._drained = self.new_waiter()
                await self._drained.wait()
                self._drained = None
            if self._ordered_full and not self._closed:
                self._ordered_drained = self.new_waiter()
                await self._ordered_drained.wait()
                self._ordered_drained = None
                self._ordered_full = False

    def handle_text(self, text: str) -> None:
        """Process one received message (public for transports that push messages); a
        method call goes to the worker pool."""
        call = self._receive(text)
        if call is not None:
            self._queue_call(call)

    def _queue_call(self, call: CallReceived) -> None:
        """Hand a call to the worker pool."""
        requests = self._requests
        if not isinstance(requests, deque):
            requests = self._requests = deque()
        requests.append((call.method, call.arguments))
        if not self._waking:
            self._wake_worker()

    def _take_reply(self, text: str) -> bool:
        """The stream's receive hook: take ``text`` now if it is the reply to a call of ours
        (its caller is woken at once, with no task switch to the reader before); leave
        anything else to the reader (False, having changed nothing). Runs outside any task, so
        it never runs a handler or a callback of its own accord."""
        # (a request is refused at its first look: its method is a string, '"' here)
        if text[_CALLBACK_PREFIX_LEN : _CALLBACK_PREFIX_LEN + 1] not in _DIGITS:
            return False
        if self._closed or not text.startswith(_CALLBACK_PREFIX):
            return False
        end = text.find(",", _CALLBACK_PREFIX_LEN, _CALLBACK_PREFIX_LEN + 20)
        digits = text[_CALLBACK_PREFIX_LEN:end]
        if not (digits.isascii() and digits.isdigit()):
            return False
        if not self.session.expects_response(int(digits)):
            return False  # a callback invocation (or an unknown id): the reader's
        call = self._receive(text)  # a reply, delivered (or dropped, when malformed)
        if call is not None:  # a message of duplicate "method" keys: the last one counts
            self._queue_call(call)
        return True

    def _receive(self, text: str) -> CallReceived | None:
        """Process one received message; a method call to run is returned, not run."""
        self.messages_in += 1
        self.chars_in += len(text)
        session = self.session
        event = session.receive(text)
        if event is None:  # queued behind a running callback
            if session.ordered_backlog > _ORDERED_HIGH_WATER:
                self._ordered_full = True
            return None
        # ``type(event) is X`` is cheaper than isinstance on this path, per message, but mypy
        # does not narrow on it: hence the ignores below
        kind = type(event)
        if kind is CallReceived:
            if self._task_group is not None and not self._closed:
                return event  # type: ignore[return-value]
        elif kind is ResponseReceived:  # a reply, due now: hand it over inline
            waiter = event.pending.waiter  # type: ignore[union-attr]
            if event.error is None:  # type: ignore[union-attr]
                waiter.set_result(event.result)  # type: ignore[union-attr]
            else:
                waiter.set_exception(event.error)  # type: ignore[union-attr]
            if self._hold is not None and self.session.pending_count:
                # with other calls in flight, more callers are likely woken in this loop pass
                # and may well call again at once: their requests then leave in one write
                # (with none, there is nothing to coalesce: no hold, no extra loop callback)
                self._hold.hold_writes()
        elif kind is CallbackInvoked:
            self._run_ordered(event)  # type: ignore[arg-type]
        elif kind is CallRejected:
            self._reject(event)  # type: ignore[arg-type]
        else:
            assert isinstance(event, MessageDropped)
            if event.malformed:
                logger.warning("%r: %s", self, event.reason)
            else:
                logger.info("%r: %s", self, event.reason)
        return None

    def _reject(self, event: CallRejected) -> None:
        logger.warning("%r: answered a malformed call: %s", self, event.error.message)
        try:
            event.respond(*response_arguments(None, event.error))
        except KiteError as exc:
            logger.debug("%r: could not answer a malformed call: %s", self, exc)

    # ---------------------------------------------------------------- ordered callbacks

    def _run_ordered(self, event: CallbackInvoked | ResponseReceived | None) -> None:
        """Run a callback, then what queued behind it, in the reader until one needs awaiting
        or none is left."""
        session = self.session
        while event is not None:
            if type(event) is ResponseReceived:
                _deliver(event)
            else:
                outcome = self._call_callback(event)  # type: ignore[arg-type]
                if outcome is not None:
                    self._ordered_awaitable = outcome
                    self._wake_ordered()
                    return
            event = session.next_ordered()

    def _call_callback(self, event: CallbackInvoked) -> Any:
        """Run a callback; return what it returned if that must be awaited, else None."""
        try:
            outcome = event.function(*event.arguments)
        except Exception:
            logger.exception("%r: callback %r raised", self, event.function)
            return None
        if outcome is None or outcome is _DONE or not hasattr(outcome, "__await__"):
            return None
        return outcome

    def _wake_ordered(self) -> None:
        waiter = self._ordered_waiter
        if waiter is not None:
            waiter.set_result(None)
        elif not self._ordered_started and self._task_group is not None:
            self._ordered_started = True
            self._task_group.start_soon(self._ordered_loop)

    async def _ordered_loop(self) -> None:
        """Await the callbacks that returned awaitables, then what queued up behind them."""
        self._others += 1  # (see _end_tasks)
        try:
            _IN_CALLBACK_OF.set(self)
            session = self.session
            while not self._closed:
                awaitable = self._ordered_awaitable
                if awaitable is None:
                    waiter = self._ordered_waiter = self.new_waiter()
                    await waiter.wait()
                    self._ordered_waiter = None
                    continue
                self._ordered_awaitable = None
                while awaitable is not None:
                    try:
                        await awaitable
                    except Exception:
                        logger.exception("%r: callback raised", self)
                    awaitable = None
                    event = session.next_ordered()
                    while event is not None:
                        if type(event) is ResponseReceived:
                            _deliver(event)
                        else:
                            awaitable = self._call_callback(event)  # type: ignore[arg-type]
                            if awaitable is not None:
                                break
                        event = session.next_ordered()
                    drained = self._ordered_drained
                    if drained is not None and session.ordered_backlog <= _ORDERED_HIGH_WATER // 2:
                        drained.set_result(None)
        finally:
            self._others -= 1

    # ---------------------------------------------------------------- worker pool

    def _wake_worker(self) -> None:
        """Get one more worker onto the request queue: an idle one, or a new one."""
        self._waking += 1
        if self._idle_workers:
            self._idle_workers.pop().set_result(None)
        else:
            assert self._task_group is not None
            self._task_group.start_soon(self._worker)

    @property
    def busy(self) -> bool:
        """Whether calls the peer made are queued or being served (graceful shutdown waits
        for this to turn False)."""
        return bool(self._requests) or self._running_calls > 0

    @property
    def pending_calls(self) -> int:
        """Calls of the peer queued or being served (bounded by ``max_pending_calls``)."""
        return len(self._requests) + self._running_calls

    def _call_finished(self) -> None:
        """A call of the peer's ended: a reader held back by the pending-calls bound goes on
        once about half of them are done."""
        self._running_calls -= 1
        drained = self._drained
        if (
            drained is not None
            and len(self._requests) + self._running_calls <= self._max_pending_calls // 2
        ):
            drained.set_result(None)

    async def _end_tasks(self, tg: TaskGroup) -> None:
        """The stream ended: let idle tasks (workers, writer, ordered runner) end by
        themselves first -- a cancelled one leaves a traceback in a reference cycle (anyio's)
        that keeps the whole connection alive until the cycle collector runs -- then cancel
        what is left. Mostly nothing is: then no cancel (anyio's builds a reason string with
        the task's repr, some 10 µs per connection)."""
        self._shutdown(DisconnectError("Remote kite has disconnected"))
        await anyio.lowlevel.checkpoint()
        # workers, writer and ordered runner not started yet end at once when they start
        # (they see the connection closed); a spawned task is counted from its spawning, a
        # call being served (in a worker, or in the task that ran the reader) by itself
        if self._workers or self._others or self._running_calls:
            tg.cancel_scope.cancel()

    async def _worker(self) -> None:
        self._workers += 1  # until it returns (a cancelled worker's connection is gone)
        while True:
            self._waking -= 1  # awake: this worker takes from the queue now
            if self._reader_wanted:
                self._reader_wanted = False
                if await self._read_loop():  # the stream ended: so does the connection
                    self._workers -= 1
                    if self._task_group is not None:
                        await self._end_tasks(self._task_group)
                    return
            requests = self._requests  # (made by the first call pushed: look each time)
            while requests:
                assert isinstance(requests, deque)
                method, arguments = requests.popleft()
                if requests and not self._waking:
                    # if this call blocks, another worker takes the ones behind it
                    self._wake_worker()
                self._running_calls += 1
                try:
                    await self._dispatch(self, method, arguments)
                except Exception:
                    logger.exception("%r: dispatching %s failed", self, method)
                finally:
                    self._call_finished()
            if len(self._idle_workers) >= _MAX_IDLE_WORKERS or self._closed:
                self._workers -= 1
                return
            waiter = self.new_waiter()
            self._idle_workers.append(waiter)
            await waiter.wait()

    # ---------------------------------------------------------------- writer

    async def _write_loop(self) -> None:
        self._others += 1  # (see _end_tasks)
        try:
            stream = self.stream
            batching = batch_send(stream)
            send_many = batching.send_many if batching is not None else None
            direct = self._direct
            while not self._closed:
                if not self._outbox and not (direct is not None and direct.pending_bytes):
                    waiter = self._writer_waiter = self.new_waiter()
                    await waiter.wait()
                    self._writer_waiter = None
                    continue
                batch, self._outbox = self._outbox, []
                try:
                    if not batch:
                        assert direct is not None  # only a direct write leaves bytes pending
                        await direct.flush()  # what a direct write left over
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
        finally:
            self._others -= 1


class _Resumed:
    """Awaiting it finishes ``coroutine``, already started and now waiting for ``awaited``:
    what ``await coroutine`` would have done from that point on (the values the coroutine
    yields go to the event loop, what the loop sends or throws goes to the coroutine)."""

    __slots__ = ("_awaited", "_coroutine")

    def __init__(self, coroutine: Coroutine[Any, Any, Any] | None, awaited: Any) -> None:
        self._coroutine = coroutine
        self._awaited = awaited

    def __await__(self) -> Generator[Any, Any, Any]:
        coroutine, awaited = self._coroutine, self._awaited
        assert coroutine is not None, "awaited twice"
        self._coroutine = self._awaited = None
        while True:
            try:
                sent = yield awaited
            except GeneratorExit:
                coroutine.close()
                raise
            except BaseException as exc:  # cancellation, mostly: the coroutine handles it
                try:
                    awaited = coroutine.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    awaited = coroutine.send(sent)
                except StopIteration as stop:
                    return stop.value


def _deliver(event: ResponseReceived) -> None:
    """Hand a reply to the caller waiting for it."""
    if event.error is None:
        event.pending.waiter.set_result(event.result)
    else:
        event.pending.waiter.set_exception(event.error)
