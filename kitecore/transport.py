"""The transport seam: how a kite gets a stream of message texts to and from a peer.

A transport turns a URL into a connected :class:`MessageStream` (client side) and mounts
routes on the kite's HTTP server that hand accepted streams to the kite (server side).
Everything above this seam sees only whole dnode message texts.
"""

from __future__ import annotations

import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

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
