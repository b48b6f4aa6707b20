"""The transport seam: how a kite gets a stream of message texts to and from a peer.

A transport turns a URL into a connected :class:`MessageStream` (client side) and mounts
routes on the kite's HTTP server that hand accepted streams to the kite (server side).
Everything above this seam sees only whole dnode message texts.

A stream may offer more than :class:`MessageStream`: the abilities below are small
``typing.Protocol`` classes (checkable with ``isinstance``) that the connection layer uses
when a stream has them, and does without otherwise:

* :class:`BatchSend` - ``send_many``: several messages in one write;
* :class:`DirectWrite` - ``write_nowait`` / ``pending_bytes`` / ``flush``: write without a
  task switch, finishing later what could not be written at once;
* :class:`OutboundCount` - ``outbound_bytes``: bytes written that the peer has not taken;
* :class:`ShieldedClose` - ``aclose_shielded``: ``aclose`` needs no cancel scope around it;
* :class:`CoalescingWrite` - ``call_soon`` / ``write_buffered``: writes made in one event
  loop pass can leave together (SockJS frames several messages as one);
* :class:`HoldWrites` - ``hold_writes``: what is written by the tasks the event loop has ready
  now leaves in one write, after they have run (a client that has just woken several callers
  with their replies: their next requests go out together);
* :class:`ReceiveHook` - ``set_receive_hook``: a received message is offered to a function
  as it arrives, before it is queued for ``receive`` (a client's replies reach their callers
  without waking the reading task first);
* :class:`HandshakeTimeout` (on a :class:`Transport`) - ``enforces_handshake_timeout``.

``isinstance`` against a runtime-checkable protocol costs tens of microseconds, too much for
every accepted connection: :func:`direct_write`, :func:`batch_send`, :func:`outbound_count`,
:func:`coalescing_write`, :func:`holds_writes`, :func:`receive_hook` and
:func:`closes_shielded` answer once per class (so declare the abilities as class members:
methods, properties or class attributes).
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, cast, runtime_checkable

from anyio.abc import ObjectStream

if TYPE_CHECKING:
    from kitecore.http.server import HTTPServer

#: A bidirectional stream of whole message texts (one dnode message per item).
MessageStream = ObjectStream[str]


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the transport knows about the other end of an accepted stream."""

    transport: str
    remote_address: str = ""
    headers: tuple[tuple[str, str], ...] = field(default=())


class TransportMismatchError(ConnectionError):
    """The server at the URL answered, but does not speak this transport there.

    A transport raises it when the peer is up yet serves something else at that URL: a raw
    WebSocket upgrade answered with 404 (or with SockJS's greeting), a SockJS ``/info`` that is
    missing or not SockJS's. In ``auto`` mode the client then tries the next transport that
    accepts the URL; any other error (refused, timed out) ends the dial at once.
    """


#: Called by a transport for each accepted stream; returns when the connection is over.
AcceptHandler = Callable[[MessageStream, PeerInfo], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DialOptions:
    """Client-side knobs a transport may honour."""

    handshake_timeout: float = 15.0
    max_message_size: int = 16 * 1024 * 1024
    headers: tuple[tuple[str, str], ...] = ()
    #: How to verify ``https://``/``wss://`` servers and which client certificate to show
    #: (:func:`kitecore.tls.client_context`); ``None``: the system's CAs, no client certificate.
    ssl_context: ssl.SSLContext | None = None


@runtime_checkable
class Transport(Protocol):
    """A way to carry kite messages.

    ``name`` is the short name users type (``websocket``, ``sockjs``, ``loopback``).
    ``priority`` orders transports that accept the same URL when ``KITE_TRANSPORT=auto``;
    the highest wins.
    """

    name: str
    priority: int

    def accepts(self, url: str) -> bool:
        """Whether :meth:`connect` can dial ``url`` (judged from its scheme and path)."""
        ...

    async def connect(self, url: str, options: DialOptions) -> MessageStream:
        """Dial ``url`` and return a connected stream; raise :class:`OSError` or
        :class:`kitecore.SendError` subclasses on failure, and
        :class:`TransportMismatchError` when the server answered in another protocol."""
        ...

    def mount(self, server: HTTPServer, prefix: str, on_accept: AcceptHandler) -> None:
        """Add this transport's server-side routes under ``prefix`` (``/kite``) on ``server``.

        A transport that has no server side (a pure client) does nothing.
        """
        ...


# --- optional stream abilities ---------------------------------------------------------------


@runtime_checkable
class BatchSend(Protocol):
    """A stream that can send several messages with one write."""

    async def send_many(self, items: list[str]) -> None:
        """Send ``items`` in order, as one write where the transport allows."""
        ...


@runtime_checkable
class DirectWrite(Protocol):
    """A stream that can write without waiting (no task switch on the hot path)."""

    def write_nowait(self, items: list[str]) -> bool:
        """Write ``items`` now, or return False having done nothing (then use ``send_many``).

        True means the stream took them; what it could not write at once is counted in
        :attr:`pending_bytes` and written by :meth:`flush` (or the next send). A closed or
        broken stream raises :class:`anyio.ClosedResourceError` /
        :class:`anyio.BrokenResourceError`.
        """
        ...

    @property
    def pending_bytes(self) -> int:
        """Bytes :meth:`write_nowait` took that still wait for :meth:`flush`."""
        ...

    async def flush(self) -> None:
        """Write what :meth:`write_nowait` left; return once the stream is below its
        high-water mark."""
        ...


@runtime_checkable
class OutboundCount(Protocol):
    """A stream that knows how many bytes wait for the peer to take them."""

    @property
    def outbound_bytes(self) -> int:
        """Bytes written for the peer that it has not taken yet."""
        ...


@runtime_checkable
class ShieldedClose(Protocol):
    """A stream whose ``aclose`` shields its own waits when ``aclose_shielded`` is True."""

    aclose_shielded: bool


@runtime_checkable
class CoalescingWrite(Protocol):
    """A stream on an event loop that lets writes made in one loop pass leave together."""

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` at the end of this event-loop pass."""
        ...

    def write_buffered(self, items: list[str]) -> None:
        """Hand ``items`` to the stream now even over its high-water mark (for callers that
        cannot wait, such as a loop callback); raises as ``write_nowait`` does."""
        ...


@runtime_checkable
class HoldWrites(Protocol):
    """A stream on an event loop that can hold back writes for the rest of a loop pass."""

    def hold_writes(self) -> None:
        """Hold back what is written from now until the callbacks the event loop has ready
        now (tasks just woken included) have run, then write it all at once. Cheap to call
        again while holding."""
        ...


@runtime_checkable
class ReceiveHook(Protocol):
    """A stream that can hand a received message to a function as it arrives."""

    def set_receive_hook(self, hook: Callable[[str], bool] | None) -> None:
        """Offer the messages received from now on to ``hook`` (None: stop), in arrival order:
        the oldest message not yet taken is offered, and while ``hook`` returns True (it has
        taken the message) the next one is; once it returns False, that message and the
        ones after it wait for :meth:`receive` as usual (they are offered again later, oldest
        first, so ``hook`` must change nothing when it returns False). ``hook`` runs in the
        stream's own context (an event-loop callback, outside any task) and must not raise."""
        ...


@runtime_checkable
class HandshakeTimeout(Protocol):
    """A transport whose ``connect`` bounds its own handshake by
    :attr:`DialOptions.handshake_timeout` (``enforces_handshake_timeout`` True), so the
    client needs no timer of its own around it."""

    enforces_handshake_timeout: bool


#: The members each ability needs, looked up on the stream's class.
_MEMBERS: dict[type, tuple[str, ...]] = {
    BatchSend: ("send_many",),
    DirectWrite: ("write_nowait", "pending_bytes", "flush"),
    OutboundCount: ("outbound_bytes",),
    ShieldedClose: ("aclose_shielded",),
    CoalescingWrite: ("call_soon", "write_buffered"),
    HoldWrites: ("hold_writes",),
    ReceiveHook: ("set_receive_hook",),
    HandshakeTimeout: ("enforces_handshake_timeout",),
}
_judged: dict[tuple[type, type], bool] = {}


def _has(obj: object, ability: type) -> bool:
    key = (type(obj), ability)
    found = _judged.get(key)
    if found is None:
        found = _judged[key] = all(hasattr(type(obj), name) for name in _MEMBERS[ability])
    return found


def batch_send(stream: object) -> BatchSend | None:
    """``stream`` as a :class:`BatchSend`, or None when its class lacks the ability."""
    return cast(BatchSend, stream) if _has(stream, BatchSend) else None


def direct_write(stream: object) -> DirectWrite | None:
    """``stream`` as a :class:`DirectWrite`, or None when its class lacks the ability."""
    return cast(DirectWrite, stream) if _has(stream, DirectWrite) else None


def outbound_count(stream: object) -> OutboundCount | None:
    """``stream`` as an :class:`OutboundCount`, or None when its class lacks the ability."""
    return cast(OutboundCount, stream) if _has(stream, OutboundCount) else None


def coalescing_write(stream: object) -> CoalescingWrite | None:
    """``stream`` as a :class:`CoalescingWrite`, or None when its class lacks the ability."""
    return cast(CoalescingWrite, stream) if _has(stream, CoalescingWrite) else None


def holds_writes(stream: object) -> HoldWrites | None:
    """``stream`` as a :class:`HoldWrites`, or None when its class lacks the ability."""
    return cast(HoldWrites, stream) if _has(stream, HoldWrites) else None


def receive_hook(stream: object) -> ReceiveHook | None:
    """``stream`` as a :class:`ReceiveHook`, or None when its class lacks the ability."""
    return cast(ReceiveHook, stream) if _has(stream, ReceiveHook) else None


def closes_shielded(stream: object) -> bool:
    """Whether ``stream`` says its ``aclose`` shields itself (:class:`ShieldedClose`)."""
    return _has(stream, ShieldedClose) and cast(ShieldedClose, stream).aclose_shielded


def enforces_handshake_timeout(transport: object) -> bool:
    """Whether ``transport`` bounds its own dial by the handshake timeout
    (:class:`HandshakeTimeout`)."""
    return (
        _has(transport, HandshakeTimeout)
        and cast(HandshakeTimeout, transport).enforces_handshake_timeout
    )
