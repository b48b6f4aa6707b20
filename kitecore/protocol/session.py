"""The state of one dnode session, without I/O: callback ids, the callback table, pending
calls and the order in which callbacks run.

A :class:`Session` is fed the texts a connection receives and answers with what to do, as h11
does for HTTP; the connection (``kitecore.connection``) does the I/O and runs the code. The
rules it keeps:

* Callback ids are this side's own: one counter from 0 for every function this side sends,
  response callbacks included; an id is never reused (protocol.md §1.2).
* The table holds only what the peer may still invoke. A response callback leaves it when its
  reply is delivered, when the caller stops waiting (:meth:`Session.forget`) or when the
  session closes; other functions stay until the session closes. At most ``max_callbacks``
  such functions are held at a time: sending more raises :class:`CallbackLimitError` and
  registers none of the message's functions.
* Method calls (:class:`CallReceived`) may run concurrently. Everything that invokes a
  callback -- replies to our calls included -- is handed out in arrival order, one at a time.
  A :class:`CallbackInvoked` may take a while (the callback may be awaited): until the driver
  has finished it and calls :meth:`Session.next_ordered`, later callback invocations and
  replies wait in the session, and ``next_ordered`` hands them out, in order, until it returns
  None. A :class:`ResponseReceived` is handled at once (the waiting caller is woken), so one
  that comes from :meth:`Session.receive` needs no follow-up. So when a caller sees its reply,
  every callback the peer invoked before replying has run (Go's
  ``ConcurrentCallbacks = false``; kite.js).
* Malformed input never escapes as an exception: :meth:`Session.receive` turns it into
  :class:`MessageDropped`, or into :class:`CallRejected` when the request can still be
  answered, or into an error reply to the pending call it was meant for.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from . import dnode
from .envelope import parse_response
from .errors import (
    ArgumentError,
    CallbackLimitError,
    InvalidResponseError,
    KiteError,
    ProtocolError,
    SendError,
)

__all__ = [
    "DEFAULT_MAX_CALLBACKS",
    "CallReceived",
    "CallRejected",
    "CallbackInvoked",
    "Event",
    "MessageDropped",
    "ResponseReceived",
    "Session",
]

#: Functions one connection holds for its peer by default (``Config.max_callbacks``).
DEFAULT_MAX_CALLBACKS = 10_000
#: Ordered events waiting for the one being handled: (callback id, arguments, error).
_Ordered = deque[tuple[int, list[Any] | None, KiteError | None]]
_NONE: frozenset[int] = frozenset()


def _no_proxy(callback_id: int) -> Any:
    """The proxy maker of a closed session (which receives nothing more)."""
    raise SendError("the session is closed")


# ------------------------------------------------------------------------------------ events
# Plain slotted classes: one is built for every message, a frozen dataclass costs twice as much.
# Treat them as read-only.


@dataclass(slots=True)
class CallReceived:
    """The peer calls ``method``: run its handler (calls may run concurrently).

    ``arguments`` are unscrubbed: the peer's functions are proxies made by ``make_proxy``.
    """

    method: str
    arguments: list[Any]


@dataclass(slots=True)
class CallbackInvoked:
    """The peer invokes our callback ``callback_id``: run ``function(*arguments)``, then ask
    :meth:`Session.next_ordered` for the next ordered event."""

    callback_id: int
    function: Callable[..., Any]
    arguments: list[Any]


@dataclass(slots=True)
class ResponseReceived:
    """The reply to a call of ours: ``pending`` (what :meth:`Session.expect_response` was
    given) gets ``result``, or fails with ``error`` when it is not None; at once.

    Handed out by :meth:`Session.receive` when it is due (nothing needs to follow), or by
    :meth:`Session.next_ordered` while draining (keep draining).
    """

    callback_id: int
    pending: Any
    result: Any
    error: KiteError | None


@dataclass(slots=True)
class CallRejected:
    """A malformed request that can still be answered: call
    ``respond(*response_arguments(None, error))``."""

    respond: Any
    error: KiteError


@dataclass(slots=True)
class MessageDropped:
    """A message that does nothing: log ``reason`` (a warning when ``malformed``)."""

    reason: str
    malformed: bool


Event = CallReceived | CallbackInvoked | ResponseReceived | CallRejected | MessageDropped


class Session:
    """dnode session state for one connection; no I/O.

    ``make_proxy(callback_id)`` builds the callable that stands for a function the peer sent
    (calling it must send the invocation back to the peer). ``max_message_size`` is the
    largest text accepted, in characters; ``max_callbacks`` the most functions held for the
    peer at a time (response callbacks of pending calls are not counted).
    """

    __slots__ = (
        "_busy",
        "_functions",
        "_make_proxy",
        "_next_id",
        "_ordered",
        "_pending",
        "_unordered",
        "closed",
        "max_callbacks",
        "max_message_size",
    )

    def __init__(
        self,
        make_proxy: Callable[[int], Any],
        *,
        max_message_size: int = 16 * 1024 * 1024,
        max_callbacks: int = DEFAULT_MAX_CALLBACKS,
    ) -> None:
        self._make_proxy = make_proxy
        self.max_message_size = max_message_size
        self.max_callbacks = max_callbacks
        self.closed = False
        self._next_id = 0
        self._functions: dict[int, Callable[..., Any]] = {}
        self._pending: dict[int, Any] = {}
        # both made when first needed (most sessions never need them): an empty set is some
        # 200 bytes, an empty deque 600
        self._unordered: set[int] | frozenset[int] = _NONE
        # ordered events waiting for the one being handled: (callback id, arguments, error)
        self._ordered: _Ordered | tuple[()] = ()
        self._busy = False

    # ------------------------------------------------------------------ state

    @property
    def callback_count(self) -> int:
        """Entries in the callback table: functions plus pending calls' response callbacks."""
        return len(self._functions) + len(self._pending)

    @property
    def pending_count(self) -> int:
        """Calls of ours still waiting for their reply."""
        return len(self._pending)

    @property
    def function_count(self) -> int:
        """Functions held for the peer (what ``max_callbacks`` bounds)."""
        return len(self._functions)

    @property
    def ordered_backlog(self) -> int:
        """Ordered events received while another one is being handled."""
        return len(self._ordered)

    # ------------------------------------------------------------------ sending

    def register(self, function: Callable[..., Any]) -> int:
        """Store a local function the peer may invoke; returns its id.

        Raises :class:`CallbackLimitError` when the table already holds ``max_callbacks``.
        """
        if len(self._functions) >= self.max_callbacks:
            raise CallbackLimitError(
                f"too many callbacks on this connection (limit {self.max_callbacks})"
            )
        callback_id = self._next_id
        self._next_id = callback_id + 1
        self._functions[callback_id] = function
        return callback_id

    def scrub(self, arguments: list[Any]) -> tuple[list[Any], dict[str, dnode.Path]]:
        """:func:`dnode.scrub` registering the functions here; all or none of them.

        Raises :class:`CallbackLimitError` (nothing registered) past the limit, and
        :class:`SendError` for a cyclic structure.
        """
        first = self._next_id
        try:
            return dnode.scrub(arguments, self.register)
        except SendError:
            self._unregister_from(first)
            raise

    def encode_call(self, method: str | int, arguments: list[Any]) -> str:
        """The text of a message calling ``method`` (a name or the peer's callback id)."""
        first = self._next_id
        try:
            scrubbed, callbacks = dnode.scrub(arguments, self.register)
        except SendError:
            self._unregister_from(first)
            raise
        return dnode.encode_call(method, scrubbed, callbacks)

    def encode_reply(self, callback_id: int, result: Any) -> str:
        """The text of a successful reply to the peer's response callback ``callback_id``:
        ``[{"error": null, "result": result}]`` (functions in ``result`` become callbacks)."""
        if type(result) not in dnode.SCALAR_TYPES:
            first = self._next_id
            try:
                scrubbed, callbacks = dnode.scrub(
                    [{"error": None, "result": result}], self.register
                )
            except SendError:
                self._unregister_from(first)
                raise
            if callbacks:
                return dnode.encode_call(callback_id, scrubbed, callbacks)
        return dnode.encode_reply(callback_id, result)

    def _unregister_from(self, first: int) -> None:
        functions = self._functions
        for callback_id in range(first, self._next_id):
            functions.pop(callback_id, None)

    def new_id(self) -> int:
        """Take the next callback id (for a response callback; see :meth:`expect_response`)."""
        callback_id = self._next_id
        self._next_id = callback_id + 1
        return callback_id

    def expect_response(self, callback_id: int, pending: Any, *, ordered: bool = True) -> None:
        """Deliver the reply sent to ``callback_id`` as a :class:`ResponseReceived` for
        ``pending`` (the first reply only; later ones are dropped).

        With ``ordered=False`` the reply does not wait for an ordered event being handled: for
        a call made *by* a running callback, whose reply would otherwise wait for it forever.
        """
        if self.closed:
            raise SendError("can't send, client is closed")
        self._pending[callback_id] = pending
        if not ordered:
            if not isinstance(self._unordered, set):
                self._unordered = set()
            self._unordered.add(callback_id)

    def expects_response(self, callback_id: int) -> bool:
        """Whether a call of ours waits for its reply at ``callback_id``."""
        return callback_id in self._pending

    def forget(self, callback_id: int) -> None:
        """Stop expecting a reply at ``callback_id`` (the caller gave up), or drop a function."""
        if self._pending.pop(callback_id, None) is None:
            self._functions.pop(callback_id, None)
        elif self._unordered:  # (a set once a reply was made unordered)
            assert isinstance(self._unordered, set)
            self._unordered.discard(callback_id)

    # ------------------------------------------------------------------ receiving

    def receive(self, text: str | bytes) -> Event | None:
        """Take one received message and say what to do with it.

        Returns None when there is nothing to do now: an ordered event that must wait for the
        one being handled (:meth:`next_ordered` hands it out later), or a session already
        closed.
        """
        if self.closed:
            return None
        if len(text) > self.max_message_size:
            return MessageDropped(
                f"dropped a message of {len(text)} characters (limit {self.max_message_size})",
                True,
            )
        try:
            method, arguments, callbacks = dnode.decode_parts(text)
        except ProtocolError as exc:
            return self._malformed(exc)
        if callbacks:
            dnode.unscrub(arguments, callbacks, self._make_proxy)
        if type(method) is str:
            return CallReceived(method, arguments)
        callback_id = cast(int, method)  # mypy narrows on `type(x) is` only when it matches
        if not self._busy:  # the common case, inline: a reply or callback due at once
            event = self._deliver(callback_id, arguments, None)
            if event is not None:
                if type(event) is CallbackInvoked:
                    self._busy = True
                return event
        return self._ordered_event(callback_id, arguments, None)

    def next_ordered(self) -> CallbackInvoked | ResponseReceived | None:
        """The ordered event due after the one just handled, or None when there is none.

        Call it when a :class:`CallbackInvoked` is finished, and again after each event it
        returns, until it returns None; in between, :meth:`receive` queues ordered events.
        """
        ordered = self._ordered
        while ordered:
            assert isinstance(ordered, deque)
            callback_id, arguments, error = ordered.popleft()
            event = self._deliver(callback_id, arguments, error)
            if event is not None:
                return event
        self._busy = False
        return None

    def close(self) -> list[Any]:
        """End the session: forget every callback and queued event.

        Returns the pending calls still waiting for a reply (the driver fails them).
        """
        self.closed = True
        pending = list(self._pending.values())
        self._pending = {}
        self._unordered = _NONE
        self._functions = {}
        if isinstance(self._ordered, deque):
            self._ordered.clear()
            self._ordered = ()
        self._busy = False
        # the maker is usually a bound method of the driver, which holds this session: let go
        # of it, so a closed connection is freed at once instead of by the cycle collector
        self._make_proxy = _no_proxy
        return pending

    # ------------------------------------------------------------------ internals

    def _ordered_event(
        self, callback_id: int, arguments: list[Any] | None, error: KiteError | None
    ) -> CallbackInvoked | ResponseReceived | MessageDropped | None:
        if not self._busy:  # nothing running: deliver now
            event = self._deliver(callback_id, arguments, error)
            if event is not None:
                if type(event) is CallbackInvoked:
                    self._busy = True
                return event
        elif callback_id in self._pending or callback_id in self._functions:
            if callback_id in self._unordered:  # a reply the running callback waits for
                return self._deliver(callback_id, arguments, error)
            ordered = self._ordered
            if not isinstance(ordered, deque):
                ordered = self._ordered = deque()
            ordered.append((callback_id, arguments, error))
            return None
        return MessageDropped(
            f"ignored a call of unknown callback {callback_id} (answered, timed out or never sent)",
            False,
        )

    def _deliver(
        self, callback_id: int, arguments: list[Any] | None, error: KiteError | None
    ) -> CallbackInvoked | ResponseReceived | None:
        pending = self._pending.pop(callback_id, None)
        if pending is not None:
            if self._unordered:  # (a set once a reply was made unordered)
                assert isinstance(self._unordered, set)
                self._unordered.discard(callback_id)
            result = None
            if error is None:
                try:
                    result = parse_response(arguments or [])
                except KiteError as exc:
                    error = exc
            return ResponseReceived(callback_id, pending, result, error)
        function = self._functions.get(callback_id)
        if function is None or arguments is None:
            return None  # a reply that came too late, or a callback we cannot run
        return CallbackInvoked(callback_id, function, arguments)

    def _malformed(self, exc: ProtocolError) -> Event | None:
        partial = exc.partial if isinstance(exc, dnode.MalformedMessage) else None
        if partial is None:
            return MessageDropped(f"dropped a malformed message: {exc.message}", True)
        # It parsed, but holds a value we refuse: answer it if it can be answered.
        method = partial.method
        if type(method) is int:
            if method in self._pending:
                error = InvalidResponseError(f"invalid response: {exc.message}")
                return self._ordered_event(method, None, error)
            return MessageDropped(f"dropped a malformed callback invocation: {exc.message}", True)
        arguments = partial.arguments
        if partial.callbacks:
            dnode.unscrub(arguments, partial.callbacks, self._make_proxy)
        options = arguments[0] if len(arguments) == 1 else None
        respond = options.get("responseCallback") if type(options) is dict else None
        if not callable(respond):
            return MessageDropped(f"dropped a malformed call of {method}: {exc.message}", True)
        return CallRejected(respond, ArgumentError(f"invalid request: {exc.message}"))
